"""`ScaledInt8`, affine 8-bit codes: the encoding, its calibration, its kernels, its arithmetic.

A new affine or block-scaled integer encoding belongs in this folder: its class in its own
module, its calibration beside `calibrate`, its loops behind `quant.native`'s choice.
"""

from .calibrate import CALIBRATIONS
from .encoding import ScaledInt8, storage_range

__all__ = ["ScaledInt8", "storage_range", "CALIBRATIONS"]
