"""Block-scaled formats as data: OCP Microscaling (MX v1.0) and NVIDIA's NVFP4.

A block-scaled format stores a tensor as blocks of ``block_size`` consecutive elements along one
axis; every block shares one scale and each element is a narrow number of an element format, so
that the value of element i of a block is ``element_i * scale`` (NVFP4 multiplies by one more
per-tensor FP32 scale). This module defines the formats (`BlockFormat`, a frozen dataclass, and
the table `block_formats()`) and names the scale rules; the exact encoder and decoder are
`numfmt.block_codec.block_encode` / ``block_decode`` / ``block_round``.

Scale rules (``amax`` is the largest magnitude of the block, exactly, from the input's own
precision; ``emax_elem`` the exponent of the element format's largest binade, ``max_elem`` its
largest value; the scale is ``2**e`` with ``e`` an E8M0 exponent in [-127, 127]):

``floor``
    The OCP MX v1.0 rule (section 6.3): ``e = floor(log2(amax)) - emax_elem``. Elements of the
    top binade above ``max_elem`` saturate (E4M3: 448 <= amax/2**e < 512 is clamped).
``ceil``
    torchao's ``ScaleCalculationMode.CEIL``: ``e = ceil(log2(amax)) - emax_elem`` (one binade
    up unless amax is a power of two: nothing saturates, small elements lose a bit).
``even``
    torchao's ``EVEN``: amax is first rounded to ``m + 1`` significant bits, ties away from zero
    (``m`` the element's mantissa bits), and then ``floor`` is applied:
    ``e = floor(log2(amax)) + 1 - emax_elem`` if ``amax >= 2**f * (2 - 2**-(m+1))`` with
    ``f = floor(log2(amax))``, else the floor exponent. (torchao adds half an element ulp to the
    float32 bit pattern and clears the mantissa.)
``rceil``
    torchao's ``RCEIL`` after cuBLAS ("Computing scaling and conversion factors for FP8 with
    UE8M0 scales"): ``e = ceil(log2(amax / max_elem))``, the smallest e with
    ``amax <= max_elem * 2**e``, computed exactly here (torchao divides and takes log2 in
    float32). No element saturates.
``nvfp4``
    NVFP4 (torchao ``nvfp4_quantize``): the block scale is ``amax / 6`` divided by the tensor
    scale ``S``, rounded to nearest even into FP8 E4M3 (saturating at 448); the elements are
    ``x / (s_block * S)`` rounded into E2M1. ``S = fp32(amax_tensor / (448 * 6))`` (torchao's
    ``per_tensor_amax_to_scale``) over the finite values, 1 for an all-zero tensor (and for
    ``nvfp4_no_tensor_scale``). A block scale that rounds to 0 makes the block 0. (torchao
    clamps the block scale to [2**-6, 448], E4M3's smallest normal, and decodes with
    ``fp32(S * s_block)``; `numfmt.block_audit` counts both.)

Edges shared by every MX rule (the OCP spec and its authors' reference code, microxcaling):
a block holding a NaN or an infinity gets the NaN scale (E8M0 code 0xFF) and decodes to NaN
everywhere; an all-zero block gets the smallest scale 2**-127 and zero elements; an exponent
below -127 (tiny or subnormal amax) is raised to -127 and the elements round on that grid;
an exponent above 127 (float64 inputs beyond ~2**(127 + emax_elem + 1)) cannot be represented
and gives the NaN scale (``overflow="raise"`` raises instead).

MXINT8: the elements are int8 two's complement codes k standing for k * 2**-6 (emax_elem 0).
Encoding saturates symmetrically to [-127, 127] (+-1 63/64, the spec's largest magnitude, as the
spec authors' microxcaling clamps to +-max_norm); the code -128 (-2) is never produced but
decodes. gfloat saturates at -2 instead: ``BlockFormat(..., symmetric=False)`` encodes that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from numfmt.exact import floor_log2
from numfmt.format import Format
from numfmt.registry import get

__all__ = ["BlockFormat", "E8M0", "ScaleFormatE8M0", "SCALE_RULES", "MX_RULES", "block_formats",
           "block_format_names", "get_block_format"]

# The MX rules (power-of-two scales) and the NVFP4 rule, by name.
MX_RULES: tuple[str, ...] = ("floor", "ceil", "even", "rceil")
SCALE_RULES: tuple[str, ...] = MX_RULES + ("nvfp4",)


@dataclass(frozen=True)
class ScaleFormatE8M0:
    """The OCP E8M0 scale: 8 bits, unsigned, exponent only (OCP MX v1.0 section 5.4.1).

    Code ``c`` in 0..254 is ``2**(c - 127)``; 0xFF is NaN; there is no zero and no infinity.
    Used when `numfmt.get("fp8_e8m0fnu")` is not (yet) in the registry; `E8M0.format` gives that
    registry entry when it exists.
    """

    name: str = "fp8_e8m0fnu"
    bits: int = 8
    bias: int = 127
    nan_code: int = 0xFF

    @property
    def min_exponent(self) -> int:
        """Smallest exponent, -127 (code 0)."""
        return -self.bias

    @property
    def max_exponent(self) -> int:
        """Largest exponent, 127 (code 254)."""
        return self.nan_code - 1 - self.bias

    @property
    def format(self) -> Format | None:
        """The registry's ``fp8_e8m0fnu`` `Format`, or None where numfmt does not have it yet."""
        try:
            return get(self.name)
        except ValueError:
            return None


E8M0 = ScaleFormatE8M0()


@dataclass(frozen=True)
class BlockFormat:
    """A block-scaled format: element format, scale format, block size, scale rule.

    Parameters
    ----------
    name : str
        The format's name (``"mxfp8_e4m3"``, ``"nvfp4"``, ...).
    element : str
        The element format's `numfmt` name (``"fp8_e4m3fn"``, ``"int8"``, ...).
    scale : str
        ``"fp8_e8m0fnu"`` (MX: a power of two) or ``"fp8_e4m3fn"`` (NVFP4).
    block_size : int
        Elements per block along the encoded axis.
    rule : str
        The standard scale rule, one of `SCALE_RULES` (``"floor"`` for MX, ``"nvfp4"``).
    tensor_scale : str or None
        ``"fp32"``: one FP32 scale per tensor, ``amax / (max_scale * max_elem)`` (NVFP4).
    element_shift : int
        An implied power of two on the element: element value = element-format value *
        2**element_shift (MXINT8: int8 codes k stand for k * 2**-6).
    symmetric : bool
        Integer elements only: whether encoding saturates to [-max, max] (MXINT8: +-127, the
        spec's largest magnitude 1 63/64); the code -128 still decodes (to -2).
    """

    name: str
    element: str
    scale: str
    block_size: int
    rule: str
    tensor_scale: str | None = None
    element_shift: int = 0
    symmetric: bool = True
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) \
                or self.block_size < 1:
            raise ValueError(f"{self.name}: block_size must be an int >= 1, "
                             f"not {self.block_size!r}")
        if self.rule not in SCALE_RULES:
            raise ValueError(f"{self.name}: rule must be one of {SCALE_RULES}, not {self.rule!r}")
        if self.scale not in ("fp8_e8m0fnu", "fp8_e4m3fn"):
            raise ValueError(f"{self.name}: scale must be 'fp8_e8m0fnu' or 'fp8_e4m3fn'")
        if (self.scale == "fp8_e4m3fn") != (self.rule == "nvfp4"):
            raise ValueError(f"{self.name}: the 'nvfp4' rule goes with E4M3 scales, the MX rules "
                             f"with E8M0")
        if self.tensor_scale not in (None, "fp32"):
            raise ValueError(f"{self.name}: tensor_scale must be None or 'fp32'")
        get(self.element)                                   # names an existing format

    # ---- the parts ---------------------------------------------------------------------
    @property
    def element_format(self) -> Format:
        """The element's `numfmt.Format` (before the implied ``element_shift``)."""
        return get(self.element)

    @property
    def is_mx(self) -> bool:
        """Whether the scale is an E8M0 power of two (an MX format)."""
        return self.scale == "fp8_e8m0fnu"

    @property
    def rules(self) -> tuple[str, ...]:
        """The scale rules this format can be encoded with."""
        return MX_RULES if self.is_mx else ("nvfp4",)

    @property
    def element_max_exact(self) -> Fraction:
        """Largest element value (after the shift; MXINT8: 127/64)."""
        return self.element_format.max_exact * Fraction(2) ** self.element_shift

    @property
    def element_min_exact(self) -> Fraction:
        """Smallest positive element value (MXINT8: 1/64)."""
        return self.element_format.smallest_subnormal_exact * Fraction(2) ** self.element_shift

    @property
    def element_emax(self) -> int:
        """``emax_elem``: the exponent of the largest power of two <= the element maximum."""
        return floor_log2(self.element_max_exact)

    @property
    def element_mantissa_bits(self) -> int:
        """Fraction bits below the leading one in the top binade (``m`` of the ``even`` rule)."""
        f = self.element_format
        return f.mantissa_bits if f.is_float else f.precision_bits - 1

    # ---- derived figures ------------------------------------------------------------------
    @property
    def scale_bits(self) -> int:
        """Bits of one block scale (8)."""
        return 8

    @property
    def bits_per_element(self) -> float:
        """Element bits plus the block scale's share, ``bits + 8 / block_size`` (the FP32
        tensor scale of NVFP4 adds 32 / numel more, negligible and not counted)."""
        return self.element_format.bits + self.scale_bits / self.block_size

    @property
    def scale_range_exact(self) -> tuple[Fraction, Fraction]:
        """Smallest positive and largest block scale (E8M0: 2**-127, 2**127; E4M3: 2**-9, 448)."""
        if self.is_mx:
            return Fraction(2) ** E8M0.min_exponent, Fraction(2) ** E8M0.max_exponent
        f = get(self.scale)
        return f.smallest_subnormal_exact, f.max_exact

    @property
    def max_exact(self) -> Fraction:
        """Largest finite value, ``element_max * max_scale`` (NVFP4: times the tensor scale 1)."""
        return self.element_max_exact * self.scale_range_exact[1]

    @property
    def smallest_exact(self) -> Fraction:
        """Smallest positive value, ``element_min * min_scale`` (NVFP4: tensor scale 1)."""
        return self.element_min_exact * self.scale_range_exact[0]

    @property
    def dynamic_range_db(self) -> float:
        """20 log10(max / smallest positive) over the whole format (every scale)."""
        return 20.0 * math.log10(self.max_exact / self.smallest_exact)

    @property
    def block_dynamic_range_db(self) -> float:
        """20 log10(element max / smallest positive element): the range inside one block."""
        return 20.0 * math.log10(self.element_max_exact / self.element_min_exact)

    def __str__(self) -> str:
        return self.name


_MX = "OCP MX v1.0: 32 elements share an E8M0 power-of-two scale"
_TABLE: tuple[BlockFormat, ...] = (
    BlockFormat("mxfp8_e4m3", "fp8_e4m3fn", "fp8_e8m0fnu", 32, "floor", description=_MX),
    BlockFormat("mxfp8_e5m2", "fp8_e5m2", "fp8_e8m0fnu", 32, "floor", description=_MX),
    BlockFormat("mxfp6_e3m2", "fp6_e3m2fn", "fp8_e8m0fnu", 32, "floor", description=_MX),
    BlockFormat("mxfp6_e2m3", "fp6_e2m3fn", "fp8_e8m0fnu", 32, "floor", description=_MX),
    BlockFormat("mxfp4_e2m1", "fp4_e2m1fn", "fp8_e8m0fnu", 32, "floor", description=_MX),
    BlockFormat("mxint8", "int8", "fp8_e8m0fnu", 32, "floor", element_shift=-6,
                description=_MX + "; int8 two's complement elements k * 2**-6, encoded into "
                                  "[-127, 127] (+-1 63/64)"),
    BlockFormat("nvfp4", "fp4_e2m1fn", "fp8_e4m3fn", 16, "nvfp4", tensor_scale="fp32",
                description="NVIDIA NVFP4: 16 E2M1 elements share an E4M3 scale, times one FP32 "
                            "tensor scale amax / (448 * 6)"),
    BlockFormat("nvfp4_no_tensor_scale", "fp4_e2m1fn", "fp8_e4m3fn", 16, "nvfp4",
                description="NVFP4 with the E4M3 block scales alone (tensor scale 1)"),
)
_BY_NAME = {f.name: f for f in _TABLE}


def block_formats() -> tuple[BlockFormat, ...]:
    """Every named block format, in table order.

    Returns
    -------
    tuple of BlockFormat

    Examples
    --------
    >>> [f.name for f in block_formats()][:2]
    ['mxfp8_e4m3', 'mxfp8_e5m2']
    """
    return _TABLE


def block_format_names() -> tuple[str, ...]:
    """The names of `block_formats()`, in table order."""
    return tuple(_BY_NAME)


def get_block_format(spec: str | BlockFormat) -> BlockFormat:
    """The named block format (a `BlockFormat` is returned as it is).

    Parameters
    ----------
    spec : str or BlockFormat
        A name of `block_format_names()` (case-insensitive), or a `BlockFormat`.

    Returns
    -------
    BlockFormat

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known names).
    TypeError
        If ``spec`` is neither a string nor a `BlockFormat`.

    Examples
    --------
    >>> get_block_format("mxfp4_e2m1").bits_per_element
    4.25
    """
    if isinstance(spec, BlockFormat):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a block format is named by a string, not {type(spec).__name__}")
    try:
        return _BY_NAME[spec.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown block format {spec!r}; known: "
                         f"{', '.join(block_format_names())}") from None
