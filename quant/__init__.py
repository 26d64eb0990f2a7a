"""quant: scaled, log-domain and block-scaled encodings with checked, exact arithmetic.

Layout (low layer first; each folder imports only from the ones above it):

* `quant._tensors`, `quant.policy`, `quant.accumulator`, `quant.fixedpoint`, `quant.metrics`:
  input checks, the overflow vocabulary (numfmt's `OverflowPolicy`; `QuantOverflowError` is
  `numfmt.RangeOverflowError`), the accumulator proof, fixed-point requantization, metrics.
* `quant.native`: the optional C loops and the one place that picks them or torch
  (`native.implementation`).
* `quant.exact_matmul`: the checked exact integer product `int_matmul`.
* `quant.scaled`: `ScaledInt8` (affine, per tensor or per channel, min-max / percentile / MSE
  calibration), its kernels and its arithmetic.
* `quant.logdomain`: `LogInt8` (sign + 7-bit fixed-point log2 magnitude), the Gaussian-log
  tables, its kernels and its arithmetic.
* `quant.integer`: the integer-only pipeline (uint8 pixels x int8 weights -> int32 ->
  fixed-point requantized int8 logits -> integer softmax), `quantize_softmax_regression`.
* `quant.blockscaled`: `BlockScaled` (OCP MX and NVFP4 block-scaled encodings, packed), its
  exact block matmul and accumulator proof.
* `quant.arith`: the public `add`, `sub`, `mul`, `div`, `dot`, `matmul` (dispatch), each exact
  in wide integers and narrowed under an explicit policy (RAISE by default).
* `quant.encodings`: the one table of named encodings (`get_encoding`).
* `quant.report` and ``python -m quant``: the comparison table and plot.
"""

from . import native
from .accumulator import AccumulatorProof, accumulator_bound
from .arith import add, div, dot, matmul, matmul_accumulator_proof, mul, sub
from .blockscaled import (BlockScaled, block_accumulator_bound, block_dot_exact,
                          block_matmul_exact, fp32_accumulation_error)
from .encodings import Encoding, encoding_names, encodings, get_encoding
from .exact_matmul import int_matmul
from .fixedpoint import quantize_multiplier, quantize_multipliers, requantize, rounding_right_shift
from .integer import (IntegerSoftmax, IntegerSoftmaxRegression, integer_softmax,
                      make_integer_softmax, prepare_int8_weight, quantize_softmax_regression)
from .logdomain import GaussianLogTable, LogInt8, exact_log_code, gaussian_log_table
from .metrics import dynamic_range_db, max_rel_error, rms_rel_error, sqnr_db
from .policy import EncodingRangeError, OverflowPolicy, QuantOverflowError, narrow
from .scaled import CALIBRATIONS, ScaledInt8

__all__ = [
    "ScaledInt8", "LogInt8", "GaussianLogTable", "gaussian_log_table", "exact_log_code",
    "OverflowPolicy", "QuantOverflowError", "EncodingRangeError", "narrow",
    "add", "sub", "mul", "div", "dot", "matmul", "matmul_accumulator_proof",
    "AccumulatorProof", "accumulator_bound", "int_matmul",
    "quantize_multiplier", "quantize_multipliers", "requantize", "rounding_right_shift",
    "dynamic_range_db", "max_rel_error", "rms_rel_error", "sqnr_db", "CALIBRATIONS",
    "IntegerSoftmax", "integer_softmax", "make_integer_softmax", "prepare_int8_weight",
    "IntegerSoftmaxRegression", "quantize_softmax_regression", "native",
    "Encoding", "encodings", "encoding_names", "get_encoding", "BlockScaled",
    "block_matmul_exact", "block_dot_exact", "block_accumulator_bound", "fp32_accumulation_error",
]
