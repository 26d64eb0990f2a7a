"""The casts each library offers between number formats, as functions on numpy arrays.

* ``torch``: ``tensor.to(target dtype)`` on a tensor of the source dtype (bf16 carried by its
  bit patterns); only dtypes torch casts to element by element (not the packed
  ``float4_e2m1fn_x2`` or ``int4``);
* ``numpy`` / ``ml_dtypes``: ``array.astype(target dtype)`` (``ml_dtypes`` when either dtype is
  an ml_dtypes type);
* ``gfloat``: ``gfloat.round_ndarray(fi, x, RoundMode.TiesToEven, sat=...)`` for the gfloat
  `FormatInfo` whose decoded codes equal the target's, with ``sat`` True exactly when the
  target's default overflow rule (`numfmt.default_overflow`) is to saturate; fp32 inputs are
  passed as float32, the others as float64 (bf16 and fp16 widen exactly).

Every cast returns its results widened exactly to float64. `numfmt.cast_audit` compares them
with the exact answer.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from numfmt.cast_compare import same_values
from numfmt.cast_inputs import storage_dtype
from numfmt.format import Format
from numfmt.registry import get
from numfmt.rounding import default_overflow

__all__ = ["LIBRARIES", "Cast", "installed", "library_cast"]

LIBRARIES = ("torch", "numpy", "ml_dtypes", "gfloat")

Cast = Callable[[np.ndarray], np.ndarray]


def installed(library: str) -> str | None:
    """Whether ``library`` can be used.

    Parameters
    ----------
    library : str
        One of `LIBRARIES`.

    Returns
    -------
    str or None
        None when it imports, else the reason (``"gfloat is not installed (...)"``).

    Raises
    ------
    ValueError
        For a name not in `LIBRARIES`.
    """
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}; known: {', '.join(LIBRARIES)}")
    try:
        __import__(library)
    except ImportError as err:
        return f"{library} is not installed ({err})"
    return None


def _is_ml_dtypes(dtype: np.dtype) -> bool:
    return dtype.type.__module__.startswith("ml_dtypes")


def _torch_cast(source: Format, target: Format) -> Cast | str | None:
    import torch

    dst = getattr(target, "torch_dtype", None)
    if dst is None:
        return None
    if storage_dtype(target, "torch") != dst:
        return f"torch.{target.torch_dtype_name} has no element-wise cast"
    src = storage_dtype(source, "torch")

    def cast(x: np.ndarray) -> np.ndarray:
        if src == torch.bfloat16:            # numpy has no bfloat16: carry the bit patterns
            t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(x)
        return t.to(dst).to(torch.float64).numpy()
    return cast


def _numpy_cast(source: Format, target: Format, library: str) -> Cast | None:
    if getattr(target, "numpy_dtype_name", None) is None:
        return None
    dst, src = target.numpy_dtype, storage_dtype(source, "numpy")
    if ("ml_dtypes" if _is_ml_dtypes(dst) or _is_ml_dtypes(src) else "numpy") != library:
        return None

    def cast(x: np.ndarray) -> np.ndarray:
        # out-of-range and NaN casts warn on purpose: the audit measures what they return
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return x.astype(dst).astype(np.float64)
    return cast


def _gfloat_infos() -> list[Any]:
    import gfloat.formats as gf
    from gfloat import Domain, Signedness

    infos = [v for k, v in vars(gf).items() if k.startswith("format_info_")
             and not callable(v) and hasattr(v, "k")]
    for p in range(1, 8):
        for sign in (Signedness.Signed, Signedness.Unsigned):
            for dom in (Domain.Extended, Domain.Finite):
                infos.append(gf.format_info_p3109(8, p, sign, dom))
    return infos


def _gfloat_cast(source: Format, target: Format) -> Cast | None:
    from gfloat import RoundMode, decode_ndarray, round_ndarray

    if target.bits > 16:
        return None
    codes = np.arange(2**target.bits)
    ours = target.decode(codes)
    match = [fi for fi in _gfloat_infos() if fi.k == target.bits
             and bool(same_values(decode_ndarray(fi, codes).astype(np.float64), ours).all())]
    if not match:
        return None
    fi, sat = match[0], default_overflow(target) == "saturate"

    def cast(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            carrier = x if x.dtype == np.float32 else x.astype(np.float64)
            return np.asarray(round_ndarray(fi, carrier, RoundMode.TiesToEven, sat=sat),
                              dtype=np.float64)
    return cast


def library_cast(library: str, source: Any, target: Any) -> Cast | str | None:
    """The cast ``library`` offers from ``source`` to ``target``.

    Parameters
    ----------
    library : str
        One of `LIBRARIES`.
    source, target : format specs
        Anything `numfmt.get` accepts.

    Returns
    -------
    callable, str or None
        A function from an array in the source's storage dtype (`numfmt.cast_inputs.
        storage_dtype`) to the results as float64; a string saying why the library knows the
        target but cannot cast to it; None when the library has no such cast.

    Raises
    ------
    ImportError
        When the library is not installed.
    ValueError
        For an unknown library or format.

    Examples
    --------
    >>> import numpy as np
    >>> cast = library_cast("torch", "fp32", "fp8_e4m3fn")
    >>> cast(np.array([1000.0], dtype=np.float32)).tolist()     # saturates
    [448.0]
    >>> library_cast("torch", "fp32", "fp6_e3m2fn") is None     # torch has no FP6 dtype
    True
    """
    s, t = get(source), get(target)
    if library == "torch":
        return _torch_cast(s, t)
    if library in ("numpy", "ml_dtypes"):
        if library == "ml_dtypes":
            import ml_dtypes  # noqa: F401  (absent library: ImportError, reported as skipped)
        return _numpy_cast(s, t, library)
    if library == "gfloat":
        return _gfloat_cast(s, t)
    raise ValueError(f"unknown library {library!r}; known: {', '.join(LIBRARIES)}")
