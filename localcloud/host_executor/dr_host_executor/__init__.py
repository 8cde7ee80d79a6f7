"""Host Lambda executor for LocalStack: Python handlers run as subprocesses of the host, no Docker.

`worker` and `process` use the standard library only (unit-tested in the project venv);
`plugin` is the LocalStack glue and imports LocalStack lazily.
"""
