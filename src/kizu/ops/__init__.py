"""Pure array operations the core shares — resizing, smoothing, pooling, registration, connected
regions, tiling — in numpy alone, so the same post-processing runs after any runtime (PyTorch or
onnxruntime) and on a line PC without PyTorch or SciPy."""
