"""The table of formats, defined once, and `get` to look one up by name, alias or dtype."""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np

from numfmt.format import Format

_INT = {"has_inf": False, "nan": "none"}
_P3109_NAME = re.compile(r"p3109_k(\d+)p(\d+)([su])([ef])")


def p3109(k: int, p: int, *, signed: bool = True,
          domain: Literal["extended", "finite"] = "extended") -> Format:
    """A format of the IEEE P3109 family (interim report: binary{k}p{p}).

    Parameters
    ----------
    k : int
        Width in bits (>= 2).
    p : int
        Precision in bits, the implicit leading bit included (1 <= p <= k - 1 when signed,
        p <= k when unsigned).
    signed : bool
        Signed formats have a sign bit, k - p exponent bits and bias 2**(k-p-1); unsigned ones
        k - p + 1 exponent bits and bias 2**(k-p).
    domain : {"extended", "finite"}
        Extended formats hold +-inf at the largest magnitude codes; finite ones do not.

    Returns
    -------
    Format
        Named ``p3109_k{k}p{p}{s|u}{e|f}``. Signed: one NaN at the -0 code (0b10...0), no -0.
        Unsigned: NaN at the all-ones code (and +inf just below it in the extended domain).
        Subnormals throughout.

    Raises
    ------
    ValueError
        For parameters outside those ranges (a signed format with p = k would have no exponent
        bit).

    Examples
    --------
    >>> p3109(8, 3).max
    49152.0
    """
    for key, v in (("k", k), ("p", p)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"p3109: {key} must be an int, not {v!r}")
    if domain not in ("extended", "finite"):
        raise ValueError(f"p3109: domain must be 'extended' or 'finite', not {domain!r}")
    top = k - 1 if signed else k
    if k < 2 or not 1 <= p <= top:
        raise ValueError(f"p3109: needs k >= 2 and 1 <= p <= {top} for a "
                         f"{'signed' if signed else 'unsigned'} format, not k={k}, p={p}")
    e = k - p if signed else k - p + 1
    name = f"p3109_k{k}p{p}{'s' if signed else 'u'}{domain[0]}"
    return Format(name, "float", k, e, p - 1, signed=signed, has_inf=domain == "extended",
                  nan="negative_zero" if signed else "max_code", bias_override=2 ** (e - 1),
                  description=f"IEEE P3109 binary{k}p{p}, {'signed' if signed else 'unsigned'}, "
                              f"{domain} domain")
    # integers hold neither: they saturate or raise
# No aliases that numpy's type codes read differently ('i8' is int64 there, 'f16' float128).

_FORMATS: tuple[Format, ...] = (
    Format("fp64", "float", 64, 11, 52, description="IEEE 754 binary64 (double)",
           aliases=("float64", "double", "float", "f64", "binary64"),
           torch_dtype_name="float64", numpy_dtype_name="float64"),
    Format("fp32", "float", 32, 8, 23, description="IEEE 754 binary32 (single)",
           aliases=("float32", "single", "f32", "binary32"),
           torch_dtype_name="float32", numpy_dtype_name="float32"),
    Format("tf32", "float", 19, 8, 10,
           description="NVIDIA TensorFloat-32: FP32 range, FP16 precision; no storage dtype of "
                       "its own: its values are held in FP32 (see HELD_IN)",
           aliases=("tensorfloat32", "tensorfloat-32")),
    Format("bf16", "float", 16, 8, 7, description="bfloat16: FP32 range, 8-bit significand",
           aliases=("bfloat16", "brain_float16"),
           torch_dtype_name="bfloat16", numpy_dtype_name="ml_dtypes.bfloat16"),
    Format("fp16", "float", 16, 5, 10, description="IEEE 754 binary16 (half)",
           aliases=("float16", "half", "binary16"),
           torch_dtype_name="float16", numpy_dtype_name="float16"),
    Format("fp8_e4m3fn", "float", 8, 4, 3, has_inf=False, nan="max_code",
           description="OCP FP8 E4M3FN: no inf, one NaN code per sign, max 448",
           aliases=("e4m3fn", "float8_e4m3fn"),
           torch_dtype_name="float8_e4m3fn", numpy_dtype_name="ml_dtypes.float8_e4m3fn"),
    Format("fp8_e5m2", "float", 8, 5, 2, description="OCP FP8 E5M2: IEEE-like, max 57344",
           aliases=("e5m2", "float8_e5m2"),
           torch_dtype_name="float8_e5m2", numpy_dtype_name="ml_dtypes.float8_e5m2"),
    Format("fp8_e4m3", "float", 8, 4, 3,
           description="IEEE-like FP8 E4M3 (ml_dtypes float8_e4m3): inf and NaN in the top "
                       "binade, max 240",
           aliases=("e4m3", "float8_e4m3"), numpy_dtype_name="ml_dtypes.float8_e4m3"),
    Format("fp8_e4m3fnuz", "float", 8, 4, 3, has_inf=False, nan="negative_zero",
           bias_override=8,
           description="FP8 E4M3FNUZ (Graphcore/AMD): bias 8, one NaN at 0x80, no -0, no inf, "
                       "max 240",
           aliases=("e4m3fnuz", "float8_e4m3fnuz"), torch_dtype_name="float8_e4m3fnuz",
           numpy_dtype_name="ml_dtypes.float8_e4m3fnuz"),
    Format("fp8_e5m2fnuz", "float", 8, 5, 2, has_inf=False, nan="negative_zero",
           bias_override=16,
           description="FP8 E5M2FNUZ (Graphcore/AMD): bias 16, one NaN at 0x80, no -0, no inf, "
                       "max 57344",
           aliases=("e5m2fnuz", "float8_e5m2fnuz"), torch_dtype_name="float8_e5m2fnuz",
           numpy_dtype_name="ml_dtypes.float8_e5m2fnuz"),
    Format("fp8_e3m4", "float", 8, 3, 4,
           description="IEEE-like FP8 E3M4 (ml_dtypes float8_e3m4): bias 3, max 15.5",
           aliases=("e3m4", "float8_e3m4"), numpy_dtype_name="ml_dtypes.float8_e3m4"),
    Format("fp8_e8m0fnu", "float", 8, 8, 0, signed=False, has_inf=False, nan="max_code",
           has_zero=False, has_subnormals=False,
           description="OCP MX E8M0 scale: unsigned powers of two 2**-127..2**127, 0xFF NaN, "
                       "no zero, no inf",
           aliases=("e8m0", "e8m0fnu", "float8_e8m0fnu"), torch_dtype_name="float8_e8m0fnu",
           numpy_dtype_name="ml_dtypes.float8_e8m0fnu"),
    p3109(8, 3), p3109(8, 4),
    Format("fp6_e3m2fn", "float", 6, 3, 2, has_inf=False, nan="none",
           description="OCP MX FP6 E3M2: no inf, no NaN",
           aliases=("e3m2fn", "float6_e3m2fn"), numpy_dtype_name="ml_dtypes.float6_e3m2fn"),
    Format("fp6_e2m3fn", "float", 6, 2, 3, has_inf=False, nan="none",
           description="OCP MX FP6 E2M3: no inf, no NaN",
           aliases=("e2m3fn", "float6_e2m3fn"), numpy_dtype_name="ml_dtypes.float6_e2m3fn"),
    Format("fp4_e2m1fn", "float", 4, 2, 1, has_inf=False, nan="none",
           description="OCP MX FP4 E2M1: no inf, no NaN, values up to 6",
           aliases=("e2m1fn", "fp4", "float4_e2m1fn"), numpy_dtype_name="ml_dtypes.float4_e2m1fn"),
    Format("int8", "int", 8, **_INT, description="two's-complement 8-bit integer, -128..127",
           aliases=("qint8",), torch_dtype_name="int8", numpy_dtype_name="int8"),
    Format("uint8", "int", 8, **_INT, signed=False,
           description="unsigned 8-bit integer, 0..255",
           aliases=("quint8",), torch_dtype_name="uint8", numpy_dtype_name="uint8"),
    Format("int4", "int", 4, **_INT, description="two's-complement 4-bit integer, -8..7",
           numpy_dtype_name="ml_dtypes.int4"),
    Format("uint4", "int", 4, **_INT, signed=False, description="unsigned 4-bit integer, 0..15",
           numpy_dtype_name="ml_dtypes.uint4"),
    Format("int2", "int", 2, **_INT, description="two's-complement 2-bit integer, -2..1",
           numpy_dtype_name="ml_dtypes.int2"),
    Format("uint2", "int", 2, **_INT, signed=False, description="unsigned 2-bit integer, 0..3",
           numpy_dtype_name="ml_dtypes.uint2"),
    Format("int16", "int", 16, **_INT,
           description="two's-complement 16-bit integer, -32768..32767",
           aliases=("i16", "short"), torch_dtype_name="int16", numpy_dtype_name="int16"),
    Format("uint16", "int", 16, **_INT, signed=False,
           description="unsigned 16-bit integer, 0..65535",
           aliases=("u16",), torch_dtype_name="uint16", numpy_dtype_name="uint16"),
    Format("int32", "int", 32, **_INT,
           description="two's-complement 32-bit integer (the usual int8 accumulator)",
           aliases=("i32", "qint32"), torch_dtype_name="int32", numpy_dtype_name="int32"),
    Format("uint32", "int", 32, **_INT, signed=False,
           description="unsigned 32-bit integer, 0..4294967295",
           aliases=("u32",), torch_dtype_name="uint32", numpy_dtype_name="uint32"),
    Format("int64", "int", 64, **_INT,
           description="two's-complement 64-bit integer (torch's default integer)",
           aliases=("i64", "long"), torch_dtype_name="int64", numpy_dtype_name="int64"),
)

# Formats without a storage dtype of their own, and the registered format that holds their values
# wherever a tensor must exist (results, elementwise math, stored weights). TF32 exists only inside
# tensor cores; everything around them is FP32. Stated once, here.
HELD_IN: dict[str, str] = {"tf32": "fp32"}

_BY_NAME: dict[str, Format] = {}
for _f in _FORMATS:
    for _key in (_f.name, *_f.aliases):
        _BY_NAME[_key.lower()] = _f


def formats() -> tuple[Format, ...]:
    """Every registered format, in a stable order (widest float first, then small floats, ints)."""
    return _FORMATS


def names() -> tuple[str, ...]:
    """Canonical names of every registered format, in `formats()` order."""
    return tuple(f.name for f in _FORMATS)


def _unknown(spec: Any) -> ValueError:
    known = ", ".join(names())
    return ValueError(f"unknown number format {spec!r}; known formats: {known} "
                      f"(aliases such as 'half', 'bfloat16', 'double' and torch/numpy dtypes work too)")


def _is_array(spec: Any) -> bool:
    """A tensor or array (of values), which `get` must not read as a dtype (numpy would try)."""
    if isinstance(spec, (np.ndarray, np.generic)):
        return True
    return type(spec).__module__.startswith("torch") and hasattr(spec, "dtype") \
        and hasattr(spec, "shape")


def get(spec: Any) -> Format:
    """The `Format` named by ``spec``.

    Parameters
    ----------
    spec : Format, str, torch.dtype, numpy dtype or scalar type, or ml_dtypes type
        A name or alias, case-insensitive ("fp16", "half", "bf16", "tf32", "double", "float",
        "int8", "e4m3fn", ...; "float" is fp64, as in numpy and Python), a ``torch.dtype``, a
        numpy dtype or scalar type, or an ml_dtypes type.

    Returns
    -------
    Format

    Raises
    ------
    ValueError
        For anything that names no registered format; the message lists the known names.
    TypeError
        For a tensor or array of values (pass its ``.dtype``).

    Examples
    --------
    >>> get("half").max
    65504.0
    >>> get(float).name
    'fp64'
    """
    if isinstance(spec, Format):
        return spec
    if _is_array(spec):
        raise TypeError(f"numfmt.get takes a format name, Format or dtype, not a "
                        f"{type(spec).__module__}.{type(spec).__name__} of values; "
                        f"pass its .dtype (numfmt.get(x.dtype))")
    if isinstance(spec, str):
        key = spec.strip().lower()
        for prefix in ("torch.", "np.", "numpy.", "ml_dtypes."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        try:
            return _BY_NAME[key]
        except KeyError:
            pass
        match = _P3109_NAME.fullmatch(key)
        if match is None:
            raise _unknown(spec)
        k, p, sign, dom = match.groups()
        return p3109(int(k), int(p), signed=sign == "s",
                     domain="extended" if dom == "e" else "finite")
    if type(spec).__module__ == "torch" and type(spec).__name__ == "dtype":
        name = str(spec).removeprefix("torch.")
        for f in _FORMATS:
            if f.torch_dtype_name == name:
                return f
        raise _unknown(spec)
    if spec is None or isinstance(spec, (bool, int, float)):
        raise _unknown(spec)  # np.dtype(None) would silently mean float64
    if spec is float:
        return _BY_NAME["fp64"]
    try:
        dtype = np.dtype(spec)
    except TypeError:
        raise _unknown(spec) from None
    for f in _FORMATS:
        if f.numpy_dtype_name is not None and f.numpy_dtype == dtype:
            return f
    raise _unknown(spec)
