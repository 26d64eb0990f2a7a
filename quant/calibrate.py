"""Deprecated alias of `quant.scaled.calibrate` (the module moved there); import from there instead."""

from .scaled.calibrate import *  # noqa: F401,F403
from .scaled.calibrate import __all__  # noqa: F401
