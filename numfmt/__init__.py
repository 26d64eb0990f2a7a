"""numfmt: an exact registry of number formats, correct rounding into them, and exp bounds.

>>> import numfmt
>>> numfmt.get("fp16").max
65504.0
>>> numfmt.exp_bounds("fp16").max_arg
11.0859375
"""

from numfmt.format import Format
from numfmt.overflow import OverflowPolicy, RangeOverflowError
from numfmt.registry import HELD_IN, formats, get, names, p3109
from numfmt.rounding import Overflow, default_overflow, round_to
from numfmt.exact import ROUNDING_MODES, floor_log2, next_down, next_up, round_exact
from numfmt.expbounds import ExpBounds, compare_exp, exp_bounds, exp_rounded
from numfmt.softmax import ACCUMULATIONS, SoftmaxSafety, softmax_safety
from numfmt.informat import (cross_entropy_in_format, exp_in_format, softmax_in_format,
                             sum_in_format)

__all__ = [
    "Format", "formats", "get", "names", "p3109", "HELD_IN", "round_to", "Overflow", "default_overflow",
    "round_exact", "ROUNDING_MODES", "next_up", "next_down", "floor_log2", "ExpBounds",
    "exp_bounds", "exp_rounded", "compare_exp", "SoftmaxSafety", "softmax_safety",
    "ACCUMULATIONS", "OverflowPolicy", "RangeOverflowError", "exp_in_format", "sum_in_format",
    "softmax_in_format", "cross_entropy_in_format",
]
