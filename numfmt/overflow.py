"""One vocabulary for "the exact result does not fit": the policy enum and the error.

`numfmt.round_to` (``overflow=``) and every checked operation of `quant` (``policy=``) take the
same `OverflowPolicy` members or their names as strings, and raise the same `RangeOverflowError`
(a subclass of the built-in `OverflowError`, so ``except OverflowError`` keeps working).
Which members a given operation accepts depends on what its destination can hold: ``INF`` and
``NAN`` need a float format that has them, ``WRAP`` an integer storage type.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["OverflowPolicy", "RangeOverflowError", "as_policy"]


class OverflowPolicy(str, enum.Enum):
    """What a result beyond the destination's range becomes.

    RAISE     raise `RangeOverflowError` naming the operation, first offending index and value.
    SATURATE  clamp to the destination's [lowest, max] (+-inf inputs too).
    WRAP      reduce modulo 2**bits into the integer storage type (two's complement), exactly
              what numpy's integer arithmetic does; integer destinations only.
    INF       +-inf (IEEE 754 overflow); float formats with infinities only.
    NAN       NaN (the non-saturating mode of formats such as FP8 E4M3FN); formats with NaN only.

    Members compare equal to their lower-case names (``OverflowPolicy.RAISE == "raise"``).
    """

    RAISE = "raise"
    SATURATE = "saturate"
    WRAP = "wrap"
    INF = "inf"
    NAN = "nan"

    def __str__(self) -> str:
        return self.value


def as_policy(policy: Any, allowed: tuple[OverflowPolicy, ...] | None = None,
              what: str = "this operation") -> OverflowPolicy:
    """Accept an `OverflowPolicy` or its name (any case) and check it is one of ``allowed``.

    Parameters
    ----------
    policy : OverflowPolicy or str
        The policy or its name ('raise', 'saturate', 'wrap', 'inf', 'nan').
    allowed : tuple of OverflowPolicy, optional
        The members the caller supports; every member when omitted.
    what : str
        Names the caller in the error message.

    Returns
    -------
    OverflowPolicy

    Raises
    ------
    ValueError
        For an unknown name or a member outside ``allowed``; the message lists the choices.
    """
    choices = tuple(OverflowPolicy) if allowed is None else allowed
    found: OverflowPolicy | None = None
    if isinstance(policy, OverflowPolicy):
        found = policy
    elif isinstance(policy, str):
        try:
            found = OverflowPolicy(policy.strip().lower())
        except ValueError:
            found = None
    if found is None or found not in choices:
        names = ", ".join(repr(c.value) for c in choices)
        raise ValueError(f"overflow policy {policy!r} is not one for {what}; use one of {names} "
                         f"(or the OverflowPolicy members of the same names)")
    return found


class RangeOverflowError(OverflowError):
    """An exact result does not fit the range of its destination.

    Attributes
    ----------
    op : str
        The operation that raised (``"round_to"``, ``"quant.add"``, ...).
    index : tuple of int
        The first offending element in row-major order (``()`` for a scalar).
    value : object
        The exact value there (a Python int for integer results, a float or Fraction otherwise).
    lowest, highest : object
        The range it had to fit (``qmin``/``qmax`` are the same values, kept as aliases).
    count, total : int
        How many elements overflow, of how many.
    """

    def __init__(self, op: str, index: tuple[int, ...], value: Any, lowest: Any, highest: Any,
                 count: int = 1, total: int = 1, hint: str = "", what: str = "exact result") -> None:
        self.op, self.index, self.value = op, tuple(index), value
        self.lowest, self.highest, self.count, self.total = lowest, highest, count, total
        msg = (f"{op}: {what} {value} at index {self.index} is outside the range "
               f"[{lowest}, {highest}] ({count} of {total} elements overflow)")
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    @property
    def qmin(self) -> Any:
        """Alias of `lowest` (quant's name for the smallest code)."""
        return self.lowest

    @property
    def qmax(self) -> Any:
        """Alias of `highest` (quant's name for the largest code)."""
        return self.highest
