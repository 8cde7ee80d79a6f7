"""Access tokens for the prediction API: verification (the authorizer), the local issuer, scopes.

A light room: PyJWT, cryptography and the standard library only (boto3 lazily, for the local JWKS parameter).
A test enforces that nothing heavier is imported."""
