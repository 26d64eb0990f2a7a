"""One cast's results against the exact round-to-nearest-even, mismatches by cause.

The exact answer is `numfmt.round_to` of the exact input (one rounding, the target's default
overflow rule, `numfmt.default_overflow`). NaN results equal NaN; otherwise results must be
equal with equal sign bits. Inputs the target has no exact answer for (NaN into a format
without NaN, or any input class for which `numfmt.round_to` raises) are counted as
``undefined``, not as mismatches, with one example.

Each mismatch gets the first cause whose rule holds, in this order (`CAUSES` names them):

``nan_inf``          the input is NaN or +-inf;
``zero``             the input is +0 (a format without zero, e8m0);
``sign``             the input is -0, or negative into a format with no negative values, or the
                     result and the exact answer are zeros of opposite sign;
``truncation``       (integer targets) the result is the input rounded toward zero: C's
                     float -> int conversion, which also explains the coincidences below;
``double_rounding``  the source is wider than float32 and the result is what rounding first to
                     float32 and then to the target (both RNE, the target's default overflow
                     rule) gives, the exact answer not (torch's and ml_dtypes' casts from
                     float64 to bf16, fp16 (torch) and the narrow formats go through float32;
                     numpy's float64 -> float16 does not);
``overflow``         the finite input lies above the target's max or below its lowest (for a
                     signed format; below an unsigned one's smallest value is underflow):
                     saturate vs inf vs NaN;
``subnormal``        (float targets) the input's magnitude is below the target's smallest normal
                     (flush to zero, wrong underflow, e8m0's values below 2**-127);
``nan_inf``          (float targets, again) the result or the exact answer is NaN or inf for
                     an input within the range;
``tie``              (float targets) the input lies exactly halfway between the result and the
                     exact answer: the tie was broken the other way (to the other code, away);
``truncation``       (float targets) the result is the input rounded toward zero;
``other``            anything else.

The example of a cause is its mismatching input nearest to 1 in magnitude (log scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from numfmt.format import Format
from numfmt.registry import get
from numfmt.rounding import round_to

__all__ = ["CAUSES", "CastAuditRow", "compare_results", "compare_with_reference",
           "exact_reference", "same_values", "skipped_row"]

CAUSES = ("nan_inf", "zero", "sign", "double_rounding", "overflow", "subnormal", "tie",
          "truncation", "other")


@dataclass(frozen=True)
class CastAuditRow:
    """One library's cast from one source format to one target, against exact RNE.

    ``checked`` inputs had an exact answer; ``mismatches`` of them differ from it, split by
    cause in ``by_cause`` (every cause of `CAUSES`, zeros included); ``examples`` maps each
    cause met (and ``"undefined"``) to one input with the library's result and the exact one,
    as ``repr`` strings (``input_hex`` is ``float.hex``). ``undefined`` counts the inputs
    without an exact answer. ``skipped`` gives the reason when the cast could not be run.
    ``trap_checked`` and ``trap_mismatches`` are the part of ``checked`` and ``mismatches``
    that came from the targeted traps (fp32/fp64 sources; 0 for exhaustive sources), so the
    rest is the seeded random sample.
    """

    source: str
    target: str
    library: str
    checked: int
    mismatches: int
    by_cause: Mapping[str, int]
    examples: Mapping[str, Mapping[str, str]]
    undefined: int = 0
    skipped: str | None = None
    trap_checked: int = 0
    trap_mismatches: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and numbers, for JSON."""
        return {"source": self.source, "target": self.target, "library": self.library,
                "checked": self.checked, "mismatches": self.mismatches,
                "by_cause": dict(self.by_cause),
                "examples": {k: dict(v) for k, v in self.examples.items()},
                "undefined": self.undefined, "skipped": self.skipped,
                "trap_checked": self.trap_checked, "trap_mismatches": self.trap_mismatches}


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({k: (MappingProxyType(dict(v)) if isinstance(v, Mapping) else v)
                             for k, v in d.items()})


def skipped_row(source: str, target: str, library: str, why: str) -> CastAuditRow:
    """A row for a cast that could not be run: nothing checked, ``skipped=why``.

    Parameters
    ----------
    source, target, library : str
        Names (``"*"`` where the row stands for every format).
    why : str
        The reason, shown in the table.

    Returns
    -------
    CastAuditRow
    """
    return CastAuditRow(source, target, library, 0, 0, _frozen({c: 0 for c in CAUSES}),
                        _frozen({}), 0, why)

def same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise sameness of two float arrays: equal with equal sign bits, or both NaN.

    Parameters
    ----------
    a, b : ndarray
        Float arrays of one shape (or broadcastable).

    Returns
    -------
    ndarray of bool
        So -0.0 and 0.0 differ, and NaN matches NaN whatever its payload.

    Examples
    --------
    >>> same_values(np.array([0.0, np.nan, 1.0]), np.array([-0.0, np.nan, 1.0])).tolist()
    [False, True, True]
    """
    return ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))


def _input_classes(x: np.ndarray, target: Format) -> list[np.ndarray]:
    """Disjoint masks covering ``x`` (NaN, +-inf, +-0, and per sign: below the smallest normal,
    normal range, beyond the max), so that an input class `round_to` refuses (NaN into int8,
    say) leaves the others defined."""
    neg = np.signbit(x)
    mag = np.abs(x)
    finite = np.isfinite(x) & (x != 0)
    masks = [np.isnan(x), np.isinf(x) & ~neg, np.isinf(x) & neg, (x == 0) & ~neg, (x == 0) & neg]
    for side in (~neg, neg):
        masks += [finite & side & (mag < target.tiny),
                  finite & side & (mag >= target.tiny) & (mag <= target.max),
                  finite & side & (mag > target.max)]
    return masks


def exact_reference(x: np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The exact RNE answers for float64 inputs ``x``, and which inputs have one.

    Parameters
    ----------
    x : ndarray of float64
        The inputs (exact values of their source).
    target : Format, str, or dtype
        Anything `numfmt.get` accepts.

    Returns
    -------
    (ndarray, ndarray, str or None)
        The answers as float64 (NaN where undefined), the mask of inputs that have one, and
        the first reason `numfmt.round_to` gave for refusing an input class (None if none).
    """
    target = get(target)
    ref = np.full(x.shape, np.nan)
    defined = np.zeros(x.shape, dtype=bool)
    why = None
    for m in _input_classes(x, target):
        if not m.any():
            continue
        try:
            ref[m] = np.asarray(round_to(x[m], target), dtype=np.float64)
        except (ValueError, OverflowError) as err:
            why = why or f"numfmt.round_to raises {type(err).__name__}: {err}"
            continue
        defined[m] = True
    return ref, defined, why


def _intermediates(source: Format, target: Format) -> list[Format]:
    """The format the libraries' casts round through first: float32, when its precision lies
    strictly between the target's and the source's."""
    fp32 = get("fp32")
    return [fp32] if target.precision_bits < fp32.precision_bits < source.precision_bits else []


def _via(x: np.ndarray, inter: Format, target: Format) -> np.ndarray | None:
    try:
        return np.asarray(round_to(round_to(x, inter), target), dtype=np.float64)
    except (ValueError, OverflowError):
        return None


def _toward_zero(x: np.ndarray, target: Format) -> np.ndarray:
    """Finite ``x`` rounded toward zero onto the target's grid (unbounded above)."""
    if not target.is_float:
        return np.trunc(x) + 0.0
    _, e = np.frexp(x)
    q = np.maximum(e.astype(np.int64) - 1, target.emin) - target.mantissa_bits
    return np.ldexp(np.trunc(np.ldexp(x, -q)), q)


def _classify(x: np.ndarray, got: np.ndarray, ref: np.ndarray, source: Format,
              target: Format) -> np.ndarray:
    """Index into `CAUSES` of each mismatch (the first rule that holds, module docstring)."""
    cause = np.full(x.shape, len(CAUSES) - 1)
    open_ = np.ones(x.shape, dtype=bool)

    def assign(name: str, rule: np.ndarray) -> None:
        hit = open_ & np.asarray(rule, dtype=bool)
        cause[hit] = CAUSES.index(name)
        open_[hit] = False

    unsigned = not getattr(target, "signed", True) or target.lowest >= 0
    with np.errstate(invalid="ignore"):
        assign("nan_inf", ~np.isfinite(x))
        assign("zero", (x == 0) & ~np.signbit(x))
        assign("sign", ((x == 0) & np.signbit(x)) | ((x < 0) & unsigned)
               | ((got == 0) & (ref == 0) & (np.signbit(got) != np.signbit(ref))))
        if not target.is_float:
            assign("truncation", same_values(got, _toward_zero(x, target)))
        for inter in _intermediates(source, target):
            if open_.any():
                via = _via(x[open_], inter, target)
                if via is not None:
                    dr = np.zeros(x.shape, dtype=bool)
                    dr[open_] = same_values(got[open_], via) & ~same_values(ref[open_], via)
                    assign("double_rounding", dr)
        # an unsigned format's lowest is its smallest value: below it is underflow
        assign("overflow", (x > target.max) | ((x < target.lowest) & (not unsigned)))
        if target.is_float:
            assign("subnormal", np.abs(x) < target.tiny)
            assign("nan_inf", ~np.isfinite(got) | ~np.isfinite(ref))
            # both are format values at equal distance: the input is a tie broken the other way
            assign("tie", np.abs(got - x) == np.abs(ref - x))
            assign("truncation", same_values(got, _toward_zero(x, target)))
    return cause


def _example(x: float, got: float, ref: float) -> dict[str, str]:
    return {"input": repr(float(x)), "input_hex": float(x).hex(), "result": repr(float(got)),
            "exact": repr(float(ref))}


def compare_with_reference(source: Format, target: Format, library: str, x: np.ndarray,
                           got: np.ndarray, ref: np.ndarray, defined: np.ndarray,
                           why: str | None, trap: np.ndarray | None = None) -> CastAuditRow:
    """The row for results ``got`` on float64 inputs ``x`` given `exact_reference`'s answer.

    Parameters
    ----------
    source, target : Format
        The formats of the inputs and of the cast's results.
    library : str
        The name the row carries.
    x, got : ndarray of float64
        Inputs and the cast's results, one shape.
    ref, defined, why
        What `exact_reference(x, target)` returned (computed once for many libraries).
    trap : ndarray of bool, optional
        Marks the targeted inputs, counted apart in ``trap_checked``/``trap_mismatches``.

    Returns
    -------
    CastAuditRow
        Mismatches by cause (the module docstring's rules) with one example each.
    """
    wrong = defined & ~same_values(got, ref)
    bad = np.flatnonzero(wrong)
    cause = _classify(x[bad], got[bad], ref[bad], source, target)
    by_cause = {c: int((cause == i).sum()) for i, c in enumerate(CAUSES)}
    examples: dict[str, dict[str, str]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # the example of a cause is its input nearest to 1 in magnitude (log scale)
        distance = np.nan_to_num(np.abs(np.log2(np.abs(x[bad]))), nan=np.inf)
    for i, c in enumerate(CAUSES):
        mine = np.flatnonzero(cause == i)
        if mine.size:
            j = int(bad[mine[np.argmin(distance[mine])]])
            examples[c] = _example(x[j], got[j], ref[j])
    undefined = np.flatnonzero(~defined)
    if undefined.size:
        j = int(undefined[0])
        examples["undefined"] = {"input": repr(float(x[j])), "input_hex": float(x[j]).hex(),
                                 "result": repr(float(got[j])), "why": str(why)}
    traps = (0, 0) if trap is None else (int((defined & trap).sum()), int((wrong & trap).sum()))
    return CastAuditRow(source.name, target.name, library, int(defined.sum()), int(bad.size),
                        _frozen(by_cause), _frozen(examples), int(undefined.size), None, *traps)


def compare_results(source: Any, target: Any, inputs: Any, results: Any,
                    library: str = "custom") -> CastAuditRow:
    """Compare one cast's ``results`` on ``inputs`` with exact RNE, mismatches by cause.

    Parameters
    ----------
    source, target : format specs
        Anything `numfmt.get` accepts; ``source`` is the format the inputs are values of
        (it decides which double rounding is possible: through float32 for fp64 sources).
    inputs : array_like
        The inputs (any real dtype numpy can widen exactly to float64: values of
        ``source``).
    results : array_like
        What the cast returned, same shape (anything convertible to float64).
    library : str
        The name the row carries.

    Returns
    -------
    CastAuditRow
        As in `audit_casts`; the causes are the module docstring's.

    Raises
    ------
    ValueError
        For unknown formats or inputs and results of different shapes.

    Examples
    --------
    >>> import ml_dtypes, numpy as np
    >>> x = np.array([1 + 2**-8 + 2**-40])          # float32 rounds it onto the bf16 tie
    >>> detour = x.astype(np.float32).astype(ml_dtypes.bfloat16)     # 1.0: ties to even
    >>> row = compare_results("fp64", "bf16", x, detour)
    >>> row.by_cause["double_rounding"], row.examples["double_rounding"]["exact"]
    (1, '1.0078125')
    """
    s, t = get(source), get(target)
    with np.errstate(invalid="ignore"):          # ml_dtypes warns on NaN, exact all the same
        x = np.asarray(inputs).astype(np.float64).ravel()
    got = np.asarray(results, dtype=np.float64).ravel()
    if np.shape(inputs) != np.shape(results):
        raise ValueError(f"inputs {np.shape(inputs)} and results {np.shape(results)} differ "
                         f"in shape")
    ref, defined, why = exact_reference(x, t)
    return compare_with_reference(s, t, library, x, got, ref, defined, why)
