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
NanEncoding = Literal["ieee", "max_code", "negative_zero", "none"]


@dataclass(frozen=True)
class Format:
    """A binary floating-point or two's-complement / unsigned integer format.

    Float formats follow the IEEE 754 layout: a sign bit (none when ``signed`` is False),
    ``exponent_bits`` biased exponent, and ``mantissa_bits`` stored fraction bits with an
    implicit leading 1 for normal numbers. The *magnitude code* is the code without its sign.

    ``nan`` says how NaN is encoded:
      * ``"ieee"``: exponent all ones; fraction 0 is infinity (``has_inf`` must be True), else NaN.
      * ``"max_code"``: only the all-ones magnitude code is NaN (one per sign); the rest of the
        top binade holds finite numbers (OCP FP8 E4M3FN, E8M0, P3109 unsigned).
      * ``"negative_zero"``: the code of -0 (sign bit alone) is the single NaN; there is no -0
        (the "fnuz" FP8 formats, P3109 signed).
      * ``"none"``: every code is a number (OCP FP6/FP4). No infinity, no NaN.

    With a non-IEEE NaN, ``has_inf`` puts +-inf at the largest magnitude code NaN leaves free
    (P3109's extended domain). ``has_zero`` False (E8M0) makes exponent field 0 an ordinary
    binade: no zero and no subnormals.
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
    has_zero: bool = True
    bias_override: int | None = field(default=None, repr=False)
    description: str = field(default="", compare=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    torch_dtype_name: str | None = field(default=None, compare=False)
    numpy_dtype_name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._check_parameters()
        if self.kind == "float":
            self._check_float_layout()
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

    def _check_float_layout(self) -> None:
        sign = 1 if self.signed else 0
        if self.bits != sign + self.exponent_bits + self.mantissa_bits:
            raise ValueError(f"{self.name}: bits must be {'1 + ' if sign else ''}exponent_bits "
                             f"+ mantissa_bits")
        if self.nan == "ieee" and not self.has_inf:
            raise ValueError(f"{self.name}: an IEEE NaN encoding has infinities (has_inf=True)")
        if self.nan == "none" and self.has_inf:
            raise ValueError(f"{self.name}: a format with infinities needs a NaN encoding")
        if self.nan == "negative_zero" and not self.signed:
            raise ValueError(f"{self.name}: nan='negative_zero' needs a sign bit")
        if not self.has_zero and self.has_subnormals:
            raise ValueError(f"{self.name}: a format without zero has no subnormals "
                             f"(pass has_subnormals=False)")
        if self.nan not in ("ieee", "max_code", "negative_zero", "none"):
            raise ValueError(f"{self.name}: unknown NaN encoding {self.nan!r}")
        if self.max_magnitude_code < 0:
            raise ValueError(f"{self.name}: the special values leave no finite magnitude code")

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
        """Exponent of the smallest normal number (unbiased); exponent field 0 is a normal
        binade in formats without zero (E8M0)."""
        if not self.is_float:
            return 0
        return (1 if self.has_zero else 0) - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite binade (unbiased)."""
        if not self.is_float:
            return 0
        return (self.max_magnitude_code >> self.mantissa_bits) - self.bias

    @property
    def max_magnitude_code(self) -> int:
        """The magnitude code (code without the sign bit) of the largest finite value: the top
        code less the codes NaN and infinity take."""
        m = self.mantissa_bits
        top = 2 ** (self.exponent_bits + m) - 1
        if not self.is_float:
            return top
        reserved = {"ieee": 2**m, "max_code": 1, "negative_zero": 0, "none": 0}[self.nan]
        if self.has_inf and self.nan != "ieee":
            reserved += 1
        return top - reserved

    def magnitude_value(self, code: int) -> Fraction:
        """The exact value of a finite magnitude code (float formats).

        Parameters
        ----------
        code : int
            A magnitude code in [0, `max_magnitude_code`].

        Returns
        -------
        Fraction
        """
        m = self.mantissa_bits
        field_, frac = code >> m, code & (2**m - 1)
        if field_ == 0 and self.has_zero:
            if not self.has_subnormals:
                return Fraction(0)
            return frac * Fraction(2) ** (1 - self.bias - m)
        return (2**m + frac) * Fraction(2) ** (field_ - self.bias - m)

    @property
    def has_negative_zero(self) -> bool:
        """Whether -0 is a value (signed floats whose -0 code is not NaN)."""
        return self.is_float and self.signed and self.has_zero and self.nan != "negative_zero"

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
        return self.magnitude_value(self.max_magnitude_code)

    @cached_property
    def lowest_exact(self) -> Fraction:
        """Most negative finite value."""
        if not self.is_float:
            return Fraction(-(2 ** (self.bits - 1)) if self.signed else 0)
        if not self.signed:
            return self.magnitude_value(0)      # 0, or E8M0's 2**-127
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
        from numfmt.layout import decode_codes

        return decode_codes(self, codes)

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
