"""Deprecated alias of `quant.integer.matmul` (the module moved there); import from there instead."""

from .integer.matmul import *  # noqa: F401,F403
from .integer.matmul import __all__  # noqa: F401
