"""`LogInt8`, a sign and a fixed-point log2 magnitude in one byte: the encoding, the
Gaussian-log table of its addition, its kernels and its arithmetic."""

from .encoding import (CODE_MAX, MAX_FRAC_BITS, GaussianLogTable, LogInt8, calibrate_offset,
                       check_offset, exact_log_code, gaussian_log_table, offset_limits,
                       rel_error_bound)

__all__ = ["LogInt8", "GaussianLogTable", "gaussian_log_table", "exact_log_code", "CODE_MAX",
           "MAX_FRAC_BITS", "offset_limits", "check_offset", "rel_error_bound",
           "calibrate_offset"]
