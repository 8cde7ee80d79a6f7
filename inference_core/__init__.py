"""The light inference core shared by the predict and batch-score functions.

Dependency rule: numpy, onnxruntime, pydantic and boto3 only. Never scikit-learn, pandas, MLflow or
Feast (they do not fit a small Lambda and slow its cold start). Training may import from here; nothing
here imports from `training`.
"""
