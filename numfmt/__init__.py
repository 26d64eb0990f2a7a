"""numfmt: an exact registry of number formats, correct rounding into them, and exp bounds.

>>> import numfmt
>>> numfmt.get("fp16").max
65504.0
>>> numfmt.exp_bounds("fp16").max_arg
11.0859375

Block-scaled formats (MX, NVFP4) are data too: `numfmt.get_block_format("mxfp8_e4m3")` and the
exact `numfmt.block_round`. Hypothesis strategies for any format live in `numfmt.strategies`
(imported on its own: it needs hypothesis).
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
from numfmt.blocks import BlockFormat, block_format_names, block_formats, get_block_format
from numfmt.block_codec import BlockEncoded, block_decode, block_encode, block_round
from numfmt.cast_audit import CastAuditRow, audit_casts

__all__ = [
    "Format", "formats", "get", "names", "p3109", "HELD_IN", "round_to", "Overflow", "default_overflow",
    "round_exact", "ROUNDING_MODES", "next_up", "next_down", "floor_log2", "ExpBounds",
    "exp_bounds", "exp_rounded", "compare_exp", "SoftmaxSafety", "softmax_safety",
    "ACCUMULATIONS", "OverflowPolicy", "RangeOverflowError", "exp_in_format", "sum_in_format",
    "softmax_in_format", "cross_entropy_in_format", "BlockFormat", "block_formats",
    "block_format_names", "get_block_format", "BlockEncoded", "block_encode", "block_decode",
    "block_round", "CastAuditRow", "audit_casts",
]
