"""The prediction API: one small Lambda behind API Gateway (REST), scoring with the ONNX champion."""
