"""The integer-only pipeline: uint8 x int8 matmul (`matmul`), integer softmax (`softmax`) and
the softmax-regression model built from them (`linear`)."""

from .linear import IntegerSoftmaxRegression, quantize_softmax_regression
from .matmul import PreparedInt8Weight, prepare_int8_weight
from .softmax import IntegerSoftmax, integer_softmax, make_integer_softmax

__all__ = ["IntegerSoftmaxRegression", "quantize_softmax_regression", "PreparedInt8Weight",
           "prepare_int8_weight", "IntegerSoftmax", "integer_softmax", "make_integer_softmax"]
