"""Deprecated alias of `quant.integer.softmax` (the module moved there); import from there instead."""

from .integer.softmax import *  # noqa: F401,F403
from .integer.softmax import __all__  # noqa: F401
