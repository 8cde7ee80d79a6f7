"""The model families training compares: a name list the step handlers validate against without importing
scikit-learn or XGBoost (≈ 1 s of a cold start on 2 cores for the steps that never train)."""

FAMILIES = ("logistic_regression", "random_forest", "xgboost")
