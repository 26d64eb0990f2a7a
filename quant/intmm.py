"""Deprecated alias of `quant.exact_matmul` (the module moved there); import from there instead."""

from .exact_matmul import *  # noqa: F401,F403
from .exact_matmul import __all__  # noqa: F401
