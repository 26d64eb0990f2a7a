"""`Format`: the defining parameters of a number format, and everything derived from them.

A format is data (a frozen dataclass of the few parameters that define it); every limit is a
property computed from those parameters, never typed in. Values are returned as Python numbers:
every value of every format here is exactly representable as a float64, and the ``*_exact``
properties give the same limits as ``fractions.Fraction`` for exact arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Literal

import numpy as np

Kind = Literal["float", "int"]
NanEncoding = Literal["ieee", "max_code", "none"]


@dataclass(frozen=True)
class Format:
    """A binary floating-point or two's-complement integer format.

    Float formats follow the IEEE 754 layout: sign, ``exponent_bits`` biased exponent, and
    ``mantissa_bits`` stored fraction bits with an implicit leading 1 for normal numbers.

    ``nan`` says how NaN is encoded:
      * ``"ieee"``: exponent all ones; fraction 0 is infinity (``has_inf`` must be True), else NaN.
      * ``"max_code"``: only exponent *and* fraction all ones is NaN; the rest of the top binade
        holds finite numbers (OCP FP8 E4M3FN). No infinity.
      * ``"none"``: every code is a finite number (OCP FP6/FP4). No infinity, no NaN.
    """

    name: str
    kind: Kind
    bits: int
    exponent_bits: int = 0
    mantissa_bits: int = 0
    has_inf: bool = True
    nan: NanEncoding = "ieee"
    has_subnormals: bool = True
    signed: bool = True
    bias_override: int | None = field(default=None, repr=False)
    description: str = field(default="", compare=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    torch_dtype_name: str | None = field(default=None, compare=False)
    numpy_dtype_name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._check_parameters()
        if self.kind == "float":
            if self.bits != 1 + self.exponent_bits + self.mantissa_bits:
                raise ValueError(f"{self.name}: bits must be 1 + exponent_bits + mantissa_bits")
            if self.has_inf != (self.nan == "ieee"):
                raise ValueError(f"{self.name}: infinity exists exactly when NaN is IEEE-encoded")
        elif self.kind == "int":
            if self.exponent_bits or self.mantissa_bits:
                raise ValueError(f"{self.name}: integer formats have no exponent or mantissa")
            if self.has_inf or self.nan != "none":
                raise ValueError(f"{self.name}: integer formats have no infinity or NaN "
                                 f"(pass has_inf=False, nan='none')")
        else:
            raise ValueError(f"{self.name}: kind must be 'float' or 'int', not {self.kind!r}")

    def _check_parameters(self) -> None:
        """Refuse parameters that define no format, before anything is derived from them."""
        for key in ("bits", "exponent_bits", "mantissa_bits"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{self.name}: {key} must be a non-negative int, not {v!r}")
        if self.kind == "float" and self.exponent_bits < 1:
            raise ValueError(f"{self.name}: a float format needs exponent_bits >= 1, "
                             f"not {self.exponent_bits} (use kind='int' for fixed point)")
        if self.kind == "int" and self.bits < (2 if self.signed else 1):
            raise ValueError(f"{self.name}: an integer format needs bits >= "
                             f"{2 if self.signed else 1}, not {self.bits}")

    # ---- float structure ---------------------------------------------------------------
    @property
    def is_float(self) -> bool:
        """Whether this is a floating-point format (else a two's-complement or unsigned integer).
        """
        return self.kind == "float"

    @property
    def bias(self) -> int:
        """Exponent bias (IEEE default 2**(e-1) - 1); 0 for integers."""
        if not self.is_float:
            return 0
        if self.bias_override is not None:
            return self.bias_override
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (unbiased)."""
        return 1 - self.bias if self.is_float else 0

    @property
    def emax(self) -> int:
        """Exponent of the largest finite binade (unbiased)."""
        if not self.is_float:
            return 0
        top_field = 2**self.exponent_bits - 1
        # IEEE reserves the all-ones exponent for inf/NaN; the other encodings use it for numbers.
        return (top_field - 1 if self.nan == "ieee" else top_field) - self.bias

    @property
    def precision_bits(self) -> int:
        """Significand bits including the implicit one (p); value bits for integers."""
        if self.is_float:
            return self.mantissa_bits + 1
        return self.bits - 1 if self.signed else self.bits

    # ---- limits, exact -------------------------------------------------------------------
    @cached_property
    def max_exact(self) -> Fraction:
        """Largest finite value."""
        if not self.is_float:
            return Fraction(2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1)
        m = self.mantissa_bits
        # Largest fraction field: all ones, one less when the all-ones code is NaN.
        top_fraction = 2**m - 1 - (1 if self.nan == "max_code" else 0)
        return Fraction(2**m + top_fraction, 2**m) * Fraction(2) ** self.emax

    @cached_property
    def lowest_exact(self) -> Fraction:
        """Most negative finite value."""
        if not self.is_float:
            return Fraction(-(2 ** (self.bits - 1)) if self.signed else 0)
        return -self.max_exact

    @cached_property
    def tiny_exact(self) -> Fraction:
        """Smallest positive normal value (numpy's ``smallest_normal``); 1 for integers."""
        return Fraction(2) ** self.emin if self.is_float else Fraction(1)

    @cached_property
    def smallest_subnormal_exact(self) -> Fraction:
        """Smallest positive value (the tiny normal when the format flushes subnormals)."""
        if not self.is_float:
            return Fraction(1)
        if not self.has_subnormals:
            return self.tiny_exact
        return Fraction(2) ** (self.emin - self.mantissa_bits)

    @cached_property
    def eps_exact(self) -> Fraction:
        """Gap between 1 and the next larger value."""
        return Fraction(1, 2**self.mantissa_bits) if self.is_float else Fraction(1)

    # ---- limits as Python numbers (all exact in float64; ints for integer formats) --------
    def as_number(self, q: Fraction) -> float | int:
        """The format value ``q`` as a Python number.

        Parameters
        ----------
        q : Fraction
            A value of the format.

        Returns
        -------
        float or int
            An int for integer formats, else a float (exact: every value of every float format
            here is a float64).
        """
        return float(q) if self.is_float else int(q)

    @property
    def max(self) -> float | int:
        """Largest finite value (a Python int for integer formats)."""
        return self.as_number(self.max_exact)

    @property
    def lowest(self) -> float | int:
        """Most negative finite value (a Python int for integer formats)."""
        return self.as_number(self.lowest_exact)

    @property
    def min(self) -> float | int:
        """numpy's name for `lowest` (``finfo.min`` / ``iinfo.min``: the most negative value)."""
        return self.lowest

    @property
    def tiny(self) -> float:
        """Smallest positive normal value (numpy's ``finfo.tiny``)."""
        return float(self.tiny_exact)

    @property
    def smallest_normal(self) -> float:
        """numpy's name for `tiny`."""
        return self.tiny

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value."""
        return float(self.smallest_subnormal_exact)

    @property
    def eps(self) -> float:
        """Gap between 1 and the next larger value (numpy's ``finfo.eps``)."""
        return float(self.eps_exact)

    @property
    def epsneg(self) -> float:
        """Gap between 1 and the next smaller value (numpy's ``finfo.epsneg``): the spacing of
        the binade below 1 (eps / 2, or the subnormal spacing where 1 is the smallest normal,
        as in FP4/FP6 E2Mx); 1 for integers."""
        if not self.is_float:
            return 1.0
        return float(Fraction(2) ** (max(-1, self.emin) - self.mantissa_bits))

    @property
    def nmant(self) -> int:
        """numpy's name for `mantissa_bits` (stored fraction bits; 0 for integers)."""
        return self.mantissa_bits

    @property
    def nexp(self) -> int:
        """numpy's name for `exponent_bits` (0 for integers)."""
        return self.exponent_bits

    @property
    def precision(self) -> int:
        """Decimal digits of precision by numpy's formula (``finfo.precision``):
        floor(-log10(eps)); 0 for integers. ml_dtypes types several FP8 values in by hand
        (1 for E4M3FN, where the formula gives 0)."""
        return self.resolution_digits

    @property
    def resolution(self) -> float:
        """numpy's ``finfo.resolution``: 10**-precision, as a Python float."""
        return 10.0 ** -self.precision

    @property
    def resolution_digits(self) -> int:
        """Decimal digits of precision (the older name of `precision`)."""
        return int(math.floor(-math.log10(self.eps))) if self.is_float else 0

    @property
    def dynamic_range_db(self) -> float:
        """20*log10(max / smallest positive value), in decibels (exact ratio; no float overflow)."""
        return _db(self.max_exact / self.smallest_subnormal_exact)

    @property
    def normal_range_db(self) -> float:
        """20*log10(max / smallest normal), in decibels."""
        return _db(self.max_exact / self.tiny_exact)

    @property
    def has_nan(self) -> bool:
        """Whether the format has a NaN code.
        """
        return self.is_float and self.nan != "none"

    # ---- backends --------------------------------------------------------------------------
    @property
    def torch_dtype(self):  # -> torch.dtype | None (torch imported lazily: it is slow to import)
        """The torch dtype that stores this format, or None (TF32, FP6, FP4 have none)."""
        if self.torch_dtype_name is None:
            return None
        import torch

        return getattr(torch, self.torch_dtype_name, None)

    @property
    def dtype(self) -> np.dtype | None:
        """numpy's name: the numpy (or ml_dtypes) storage dtype, or None (see `numpy_dtype`)."""
        return self.numpy_dtype

    @property
    def numpy_dtype(self) -> np.dtype | None:
        """The numpy (or ml_dtypes) dtype that stores this format, or None."""
        if self.numpy_dtype_name is None:
            return None
        if self.numpy_dtype_name.startswith("ml_dtypes."):
            import ml_dtypes

            return np.dtype(getattr(ml_dtypes, self.numpy_dtype_name.split(".", 1)[1]))
        return np.dtype(self.numpy_dtype_name)

    # ---- enumeration -------------------------------------------------------------------------
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The values (float64) of bit patterns.

        Parameters
        ----------
        codes : array_like of int
            Unsigned integers below 2**bits.

        Returns
        -------
        numpy.ndarray
            float64, the shape of ``codes``.

        Raises
        ------
        ValueError
            For a code outside [0, 2**bits).

        Notes
        -----
        This reads the bit layout directly, independently of the derived limits, so the two can be
        checked against each other.
        """
        c = np.asarray(codes, dtype=np.int64)
        if np.any((c < 0) | (c >= 2**self.bits)):
            raise ValueError(f"{self.name}: codes must lie in [0, 2**{self.bits})")
        if not self.is_float:
            if self.signed:
                c = np.where(c >= 2 ** (self.bits - 1), c - 2**self.bits, c)
            return c.astype(np.float64)
        m, e = self.mantissa_bits, self.exponent_bits
        sign = np.where((c >> (self.bits - 1)) & 1, -1.0, 1.0)
        ef = (c >> m) & (2**e - 1)
        frac = (c & (2**m - 1)).astype(np.float64)
        sub = np.ldexp(frac, self.emin - m)
        if not self.has_subnormals:
            sub = np.zeros_like(sub)
        norm = np.ldexp(1.0 + frac / 2.0**m, (ef - self.bias).astype(np.int64))
        v = sign * np.where(ef == 0, sub, norm)
        top = ef == 2**e - 1
        if self.nan == "ieee":
            v = np.where(top & (frac == 0), sign * np.inf, v)
            v = np.where(top & (frac != 0), np.nan, v)
        elif self.nan == "max_code":
            v = np.where(top & (frac == 2**m - 1), np.nan, v)
        return v

    def finite_values(self) -> np.ndarray:
        """Every distinct finite value, ascending, as float64 (one zero). Only for <= 24 bits."""
        if self.bits > 24:
            raise ValueError(f"{self.name} has 2**{self.bits} codes: too many to enumerate")
        v = self.decode(np.arange(2**self.bits))
        return np.unique(v[np.isfinite(v)] + 0.0)  # + 0.0 folds -0 into +0

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        layout = (f"e{self.exponent_bits}m{self.mantissa_bits}" if self.is_float
                  else ("signed" if self.signed else "unsigned"))
        return f"Format({self.name!r}: {self.kind}, {self.bits} bits, {layout})"


def _db(ratio: Fraction) -> float:
    """20*log10 of a positive rational, from the logs of its (arbitrarily large) integer parts."""
    return 20.0 * (math.log10(ratio.numerator) - math.log10(ratio.denominator))
