"""Diabetes Risk: a serverless MLOps reference project (training, serving, monitoring) for AWS or a laptop."""

__version__ = "0.1.0"
