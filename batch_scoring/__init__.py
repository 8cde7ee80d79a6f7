"""Batch scoring: stream a CSV/Parquet file, validate each row with the shared rules, score the valid ones
with the champion ONNX model, write predictions, errors, a drift report and a manifest.

Depends on the inference core plus pyarrow (streaming CSV/Parquet) and numpy; never on pandas, scikit-learn,
MLflow or Feast, so the Lambda package stays small."""
