"""`LogInt8`: a sign and a 7-bit fixed-point log2 magnitude in one byte.

The grid and its exact helpers (`grid`), the Gaussian-log tables of log-domain addition
(`gaussian`), the encode / decode loops (`kernels`), the encoding class (`encoding`) and its
checked arithmetic (`arith`). A new logarithmic or other non-affine 8-bit encoding belongs in
a folder like this one.
"""

from .encoding import LogInt8, calibrate_offset
from .gaussian import GaussianLogTable, gaussian_log_table
from .grid import (CODE_MAX, MAX_FRAC_BITS, check_offset, decode_rel_error_bound,
                   exact_log_code, offset_limits, rel_error_bound)

__all__ = ["LogInt8", "GaussianLogTable", "gaussian_log_table", "exact_log_code", "CODE_MAX",
           "MAX_FRAC_BITS", "offset_limits", "check_offset", "rel_error_bound",
           "decode_rel_error_bound", "calibrate_offset"]
