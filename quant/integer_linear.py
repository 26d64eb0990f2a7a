"""Deprecated alias of `quant.integer.linear` (the module moved there); import from there instead."""

from .integer.linear import *  # noqa: F401,F403
from .integer.linear import __all__  # noqa: F401
