"""numfmt: an exact registry of number formats, correct rounding into them, and exp bounds.

>>> import numfmt
>>> numfmt.get("fp16").max
65504.0
>>> numfmt.exp_bounds("fp16").max_arg
11.0859375
"""

from numfmt.format import Format
from numfmt.overflow import OverflowPolicy, RangeOverflowError
from numfmt.registry import formats, get, names
from numfmt.rounding import Overflow, default_overflow, round_to
from numfmt.exact import next_down, next_up, round_exact
from numfmt.expbounds import ExpBounds, compare_exp, exp_bounds, exp_rounded
from numfmt.softmax import SoftmaxSafety, softmax_safety

__all__ = [
    "Format", "formats", "get", "names", "round_to", "Overflow", "default_overflow",
    "round_exact", "next_up", "next_down", "ExpBounds", "exp_bounds", "exp_rounded", "compare_exp",
    "SoftmaxSafety", "softmax_safety", "OverflowPolicy", "RangeOverflowError",
]
