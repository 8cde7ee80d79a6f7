"""Offline ML for Diabetes Risk: data, validation, features, models, evaluation, ONNX export, registry.

Heavy dependencies (pandas, scikit-learn, XGBoost, MLflow, Feast) live only here and in the training
functions; the serving side uses `inference_core`.
"""
