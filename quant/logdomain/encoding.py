"""`LogInt8`: a sign and a 7-bit fixed-point log2 magnitude in one byte.

Layout. A code c is an int8 in [-127, 127]: sign(c) is the sign of the value, |c| = m is the
7-bit magnitude code, and m = 0 (c = 0) is reserved for zero. For m in 1..127

    |value| = 2 ** ((m + offset) / 2**frac_bits)

so consecutive magnitudes differ by the factor 2**(2**-frac_bits) (2**(1/8) by default) and
the integer `offset` (calibrated from data) places the 127 magnitudes. Storing the signed
value +-m rather than a raw sign|magnitude bit pattern keeps code order equal to value order
and makes negation a code negation; -128 is not a valid code. (`sign_magnitude_bits` gives the
sign<<7 | m byte for interchange.)

Range and error. The representable magnitudes span 126 / 2**frac_bits octaves:
20 log10(2) * 126 / 2**frac_bits dB (94.8 dB for frac_bits = 3). Encoding rounds log2|x| to
the nearest code (a tie is impossible: it would need |x| = 2**(odd / 2**(frac_bits+1)), which
is irrational), so inside the range |log2(decode/x)| <= 2**-(frac_bits+1) and the relative
error of the code's exact value is at most 2**(2**-(frac_bits+1)) - 1 (4.43% for frac_bits =
3); a decoded float adds its own rounding, and `LogInt8.rel_error_bound` states the bound of
the default float32 decode exactly (`rel_error_bound_for` per dtype). Values above the top
magnitude saturate to +-127; values whose log code rounds below 1 flush to zero (relative error
1 there). NaN and infinity are refused.

Exactness of the encoder. The code of |x| is floor((floor(2**(F+1) * log2|x|) + 1) / 2) for
F = frac_bits, and floor(2**(F+1) log2 v) is the binary exponent of v**(2**(F+1)). The encoder
scales x by a power of two into a window, raises it to that power by F+1 exact-enough float64
squarings, and reads the exponent bits; every step is monotone, and the result is checked
exhaustively against exact rational arithmetic for every float32 mantissa in the test suite.
For float64 inputs the squarings are not exact: a value whose w lies within a few ulps of a
code boundary is marked by both loops and decided in exact rational arithmetic
(`quant.logdomain.kernels.resolve_marked`), so no code is ever off by one, float64 included.
Decoding reads a 256-entry table of correctly rounded values. Both loops run fused in C (`quant.native`) where the extension is built, and as torch passes
otherwise; the two compute the same bits (tested on every float32 mantissa).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import torch

from .. import metrics
from .._tensors import as_float_input, as_tensor, check_finite, has_values
from ..metrics import quantile_rows
from ..policy import EncodingRangeError
from .grid import (CODE_MAX, check_frac_bits, check_offset, decode_rel_error_bound,
                   exact_log_code, exp2_float, offset_limits)
from .kernels import decode_values, encode_codes

__all__ = ["LogInt8", "calibrate_offset"]


@dataclass(frozen=True, eq=False, repr=False)
class LogInt8(metrics.DecodeErrorMetrics):
    """Log-domain 8-bit encoding (see `quant.logdomain.encoding` for the layout and bounds).

    Attributes
    ----------
    codes : torch.Tensor
        int8, values in [-127, 127]. The constructor copies the caller's tensor.
    offset : int
        Places the 127 magnitudes: code m stands for 2**((m + offset) / 2**frac_bits).
    frac_bits : int
        Fractional bits of the log2 magnitude, 0..6 (3 by default: steps of 2**(1/8)).

    Notes
    -----
    Build it from data with `LogInt8.encode` or directly from codes and parameters; direct
    construction validates them. Two encodings are ``==`` when codes, offset and frac_bits
    are equal; they are unhashable.

    Examples
    --------
    >>> import torch, quant
    >>> e = quant.LogInt8.encode(torch.tensor([1.0, -0.5]), offset=-127)
    >>> e.codes.tolist(), e.decode().tolist()
    ([127, -119], [1.0, -0.5])
    """

    codes: torch.Tensor
    offset: int
    frac_bits: int = 3

    def __post_init__(self) -> None:
        codes = as_tensor(self.codes, "LogInt8 codes")
        if codes.dtype != torch.int8:
            raise TypeError(f"LogInt8 codes must be an int8 tensor, got {codes.dtype}"
                            + ("; use LogInt8.encode to encode real values"
                               if codes.is_floating_point() else ""))
        f = check_frac_bits(self.frac_bits)
        offset = check_offset(self.offset, f)
        codes = codes.clone()                   # the encoding owns its codes (never aliased)
        if codes.numel() and has_values(codes) and bool((codes == -128).any()):
            raise ValueError("-128 is not a LogInt8 code (codes lie in [-127, 127])")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "frac_bits", f)

    @classmethod
    def _trusted(cls, codes: torch.Tensor, offset: int, frac_bits: int) -> LogInt8:
        """Construct without validation (for results this package has just computed)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "codes", codes)
        object.__setattr__(obj, "offset", int(offset))
        object.__setattr__(obj, "frac_bits", int(frac_bits))
        return obj

    def __eq__(self, other: object) -> bool:
        """Equal by value: codes, offset and frac_bits."""
        if not isinstance(other, LogInt8):
            return NotImplemented
        return (self.offset, self.frac_bits) == (other.offset, other.frac_bits) and \
            self.codes.shape == other.codes.shape and \
            torch.equal(self.codes.cpu(), other.codes.cpu())

    __hash__ = None  # type: ignore[assignment]  # equal by (mutable) value: unhashable

    # ----------------------------------------------------------------------------- encode
    @classmethod
    def encode(cls, x: torch.Tensor | np.ndarray, offset: int | None = None,
               frac_bits: int = 3, calibration: str = "max", *,
               percentile: float = 99.99) -> LogInt8:
        """Encode real values (torch tensor or numpy array; never modified).

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Real values; the codes are made on x's device.
        offset : int, optional
            None calibrates it (`calibrate_offset`) so that the largest |x| ('max') or the
            `percentile`-th percentile of the nonzero |x| ('percentile') gets magnitude code
            127; all-zero data get offset -127 (top magnitude 1.0).
        frac_bits : int
            0..6.
        calibration : str
            'max' or 'percentile'.
        percentile : float
            In (0, 100].

        Returns
        -------
        LogInt8
            Every code is the nearest one to log2|x| (exact, float64 inputs too); values above
            the top magnitude saturate to +-127 and values below half a step under the
            bottom one flush to 0, as documented in `quant.logdomain.encoding`.

        Raises
        ------
        ValueError
            NaN or infinity, bad parameters, an empty tensor without an offset.
        EncodingRangeError
            When a calibrated offset cannot reach the data (magnitudes live in float32: the
            largest |x| beyond ~3.4e38 would saturate, one below ~1e-45 would flush to 0).
        """
        xf = as_float_input(x, "LogInt8.encode")
        f = check_frac_bits(frac_bits)
        if calibration not in ("max", "percentile"):
            raise ValueError(f"unknown LogInt8 calibration {calibration!r}; use 'max' or "
                             f"'percentile'")
        if offset is None:
            offset = calibrate_offset(xf, f, calibration, percentile)
        offset = check_offset(offset, f)
        codes = encode_codes(xf.contiguous().reshape(-1), offset, f, xf)
        return cls._trusted(codes.reshape(xf.shape), offset, f)

    # ----------------------------------------------------------------------------- decode
    def decode(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Values sign * 2**((|code| + offset) / 2**frac_bits), correctly rounded to `dtype`.

        Parameters
        ----------
        dtype : torch.dtype
            torch.float32 (default) or torch.float64.

        Returns
        -------
        torch.Tensor
            A new tensor on the codes' device. `rel_error_bound_for` states the error
            bound of this decode against the values encoded.
        """
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"decode produces torch.float32 or torch.float64, not {dtype!r}")
        return decode_values(self.codes, self.offset, self.frac_bits, dtype)

    def sign_magnitude_bits(self) -> torch.Tensor:
        """The codes as uint8 bytes sign << 7 | m (m = |code|); zero is 0x00."""
        c = self.codes.to(torch.int16)
        return (c.abs() + torch.where(c < 0, 128, 0)).to(torch.uint8)

    # ------------------------------------------------------------------------- properties
    @property
    def shape(self) -> torch.Size:
        """Shape of the encoded tensor."""
        return self.codes.shape

    @property
    def nbytes(self) -> int:
        """Bytes as stored: one per code, and 2 for the offset (11 bits) and frac_bits
        (3 bits) packed together."""
        return self.codes.numel() + 2

    @property
    def max_magnitude(self) -> float:
        """Largest representable |value| (code 127), as the float64 nearest to it."""
        return exp2_float(CODE_MAX + self.offset, self.frac_bits)

    @property
    def min_magnitude(self) -> float:
        """Smallest nonzero representable |value| (code 1)."""
        return exp2_float(1 + self.offset, self.frac_bits)

    @property
    def dynamic_range_db(self) -> float:
        """20 log10(max/min magnitude) = 20 log10(2) * 126 / 2**frac_bits, in dB."""
        return 20.0 * math.log10(2.0) * (CODE_MAX - 1) / (1 << self.frac_bits)

    @property
    def log2_error_bound(self) -> float:
        """Largest |log2(v / x)| for x inside the range, v the exact value of its code: half
        a step."""
        return 2.0 ** -(self.frac_bits + 1)

    @property
    def rel_error_bound(self) -> float:
        """Largest |decode() - x| / |x| for x inside the range, for the default (float32)
        decode: `rel_error_bound_for(torch.float32)`."""
        return self.rel_error_bound_for(torch.float32)

    def rel_error_bound_for(self, dtype: torch.dtype = torch.float32) -> float:
        """Largest |decode(dtype) - x| / |x| for x inside the range.

        Parameters
        ----------
        dtype : torch.dtype
            The decode's output dtype.

        Returns
        -------
        float
            The exact worst case over this encoding's 127 magnitudes (`decode_rel_error_bound`):
            the grid's 2**(2**-(F+1)) - 1 (`quant.logdomain.rel_error_bound`) plus about one
            rounding of `dtype` (more where float32 decodes land on subnormals).
        """
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"decode produces torch.float32 or torch.float64, not {dtype!r}")
        return decode_rel_error_bound(self.offset, self.frac_bits, dtype)

    def __repr__(self) -> str:
        return (f"LogInt8(shape={tuple(self.shape)}, offset={self.offset}, "
                f"frac_bits={self.frac_bits}, magnitudes=[{self.min_magnitude:.4g}, "
                f"{self.max_magnitude:.4g}])")


def calibrate_offset(x: torch.Tensor, frac_bits: int, calibration: str = "max",
                     percentile: float = 99.99) -> int:
    """Offset that gives the largest (or `percentile`-th percentile) |x| magnitude code 127.

    Parameters
    ----------
    x : torch.Tensor
        float32/float64 values, not empty.
    frac_bits : int
        The grid's fractional bits.
    calibration : str
        'max' or 'percentile'.
    percentile : float
        In (0, 100], of the nonzero |x|.

    Returns
    -------
    int
        The offset, within `offset_limits`; -127 for all-zero data.

    Raises
    ------
    EncodingRangeError
        If the top magnitude cannot get a code in 1..127 at any offset inside the limits
        (it would saturate or flush to zero).
    """
    if x.numel() == 0:
        raise ValueError("cannot calibrate a LogInt8 offset from an empty tensor; pass offset=")
    if not has_values(x):
        raise ValueError("LogInt8.encode: a meta tensor has no values to calibrate an offset "
                         "from; pass offset=")
    lo, hi = torch.aminmax(x.reshape(-1))       # one pass, no |x| temporary for 'max'
    top = torch.maximum(-lo, hi)
    if not bool(torch.isfinite(top)):
        check_finite(x, "LogInt8.encode")
    if calibration == "percentile":
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
        a = x.abs().reshape(-1)
        nz = a[a > 0]
        if nz.numel():                  # numpy's default (linear) percentile, as for scales
            top = quantile_rows(nz.reshape(1, -1), percentile / 100.0)[0]
    lo, hi = offset_limits(frac_bits)
    if float(top) == 0.0:
        return max(lo, min(hi, -CODE_MAX))
    code = exact_log_code(float(top), frac_bits)
    offset = max(lo, min(hi, code - CODE_MAX))
    if not 1 <= code - offset <= CODE_MAX:
        raise EncodingRangeError(
            f"LogInt8.encode: the largest |x| = {float(top):.4g} cannot get a code: magnitudes "
            f"live in float32 (offsets {lo}..{hi} for frac_bits={frac_bits}), so it would "
            f"{'saturate' if code - offset > CODE_MAX else 'flush to 0'}; scale the data first "
            f"or pass offset= to choose the saturation deliberately")
    return offset
