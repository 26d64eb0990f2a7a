"""quant: scaled and log-domain int8 encodings with checked arithmetic.

Encodings: `ScaledInt8` (affine, per tensor or per channel, calibrated by min-max, percentile
or MSE search) and `LogInt8` (sign + 7-bit fixed-point log2 magnitude). Arithmetic: `add`,
`sub`, `mul`, `div`, `dot`, `matmul`, each exact in wide integers and narrowed under an
explicit `OverflowPolicy` (RAISE by default, raising `QuantOverflowError`). Supporting pieces:
fixed-point requantization (`quantize_multiplier`, `requantize`), the static accumulator proof
(`accumulator_bound`, `matmul_accumulator_proof`) and error metrics. `python -m quant` prints
the comparison table. The integer-only pipeline (uint8 pixels x int8 weights -> int32 ->
fixed-point requantized int8 logits -> integer softmax) is `quantize_softmax_regression`.
Encode and decode loops run in a small C extension where pip could build it
(`quant.native.available()`), and as torch passes, computing the same bits, where not.
"""

from .accumulator import AccumulatorProof, accumulator_bound
from .arith import add, div, dot, matmul, matmul_accumulator_proof, mul, sub
from .scaled.calibrate import CALIBRATIONS
from .fixedpoint import quantize_multiplier, quantize_multipliers, requantize, rounding_right_shift
from .integer.linear import IntegerSoftmaxRegression, quantize_softmax_regression
from .integer.matmul import prepare_int8_weight
from .integer.softmax import IntegerSoftmax, integer_softmax, make_integer_softmax
from .exact_matmul import int_matmul
from . import native
from .logdomain.encoding import GaussianLogTable, LogInt8, exact_log_code, gaussian_log_table
from .metrics import dynamic_range_db, max_rel_error, rms_rel_error, sqnr_db
from .policy import OverflowPolicy, QuantOverflowError, narrow
from .scaled.encoding import ScaledInt8

__all__ = [
    "ScaledInt8", "LogInt8", "GaussianLogTable", "gaussian_log_table", "exact_log_code",
    "OverflowPolicy", "QuantOverflowError", "narrow",
    "add", "sub", "mul", "div", "dot", "matmul", "matmul_accumulator_proof",
    "AccumulatorProof", "accumulator_bound", "int_matmul",
    "quantize_multiplier", "quantize_multipliers", "requantize", "rounding_right_shift",
    "dynamic_range_db", "max_rel_error", "rms_rel_error", "sqnr_db", "CALIBRATIONS",
    "IntegerSoftmax", "integer_softmax", "make_integer_softmax", "prepare_int8_weight",
    "IntegerSoftmaxRegression", "quantize_softmax_regression", "native",
]
