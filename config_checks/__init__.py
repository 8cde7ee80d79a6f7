"""Offline checks of the files that serve Docker, SAM and GitHub users: docker-compose.yml, the Dockerfiles,
samconfig.toml, the workflows, dependabot, pre-commit, and the synthesized CloudFormation templates.

Each check is a function over file paths, so a test can hand it a deliberately broken copy; `python -m
config_checks` (part of `make lint`) runs them all on the repository's files."""
