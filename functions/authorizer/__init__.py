"""The API Gateway token authorizer: verifies OAuth client-credentials JWTs for /predict and /model."""
