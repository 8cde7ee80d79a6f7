"""The project's console: Step Functions runs (live), models and batches in the browser, on 127.0.0.1.

It reads everything through the AWS APIs and MLflow's, with the CLI's clients, so the same pages serve the
embedded local cloud and a stack on AWS. Its dependency rule (tests/unit/test_console.py): no training, model
or Lambda code is imported — boto3, requests, FastAPI and Jinja2 only, plus batch scoring's naming."""
