"""The embedded local cloud: LocalStack in host mode with the project's host Lambda executor, plus MLflow.

Nothing here is imported by Lambda handlers; it is the laptop/CI stand-in for an AWS account.
"""
