"""Exporting a trained model for deployment: the tensor part as ONNX (``onnx_graph``) and the
deployable bundle checked against the PyTorch runtime before it is written (``bundle``)."""
