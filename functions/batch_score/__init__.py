"""Batch scoring on S3 drop."""
