"""Benchmarks that print their figures and targets (MET/MISSED); nothing here is a test.

Command lines: `benchmarks.int8_softmax` (the int8 model against FP32, PyTorch and ONNX
Runtime), `benchmarks.numfmt_speed`, `benchmarks.quant_speed`, `benchmarks.train_speed`,
`benchmarks.matmul_formats`. Shared pieces: `benchmarks._timing` (the one timer),
`benchmarks.busy` (a bounded co-tenant process), and for int8_softmax `benchmarks.variant`,
`benchmarks.int8_variants`, `benchmarks.ort_variants`, `benchmarks.int8_measure`,
`benchmarks.machine_floor`, `benchmarks.int8_report`.
"""
