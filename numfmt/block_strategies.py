"""Hypothesis strategies for block-scaled formats: blocks at the edges that break scale rules.

* `edge_blocks`: one block (a list of Python floats) whose amax sits just below, at or above a
  power of two (anywhere from the float64 subnormals up), or at a random point of its binade,
  optionally with a NaN or an infinity at a random position.
* `block_arrays`: a whole numpy array of such blocks for a `numfmt.blocks` format, of a dtype,
  with a last block that may be shorter than the block size.

hypothesis is imported only here, so ``import numfmt`` does not need it.

Examples
--------
>>> from hypothesis import given
>>> @given(edge_blocks(size=4, exp_lo=-3, exp_hi=3, specials=False))
... def test_amax_is_finite(block):
...     assert max(map(abs, block)) < 16
>>> test_amax_is_finite()
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from numfmt.blocks import BlockFormat, get_block_format

__all__ = ["edge_blocks", "block_arrays", "AMAX_KINDS"]

AMAX_KINDS = ("below", "at", "above", "random")


@st.composite
def edge_blocks(draw, size: int = 32, exp_lo: int = -1074, exp_hi: int = 1023,
                specials: bool = True) -> list[float]:
    """A block of ``size`` floats whose amax is at an edge of ``2**k``, k in [exp_lo, exp_hi].

    Parameters
    ----------
    size : int
        Elements in the block.
    exp_lo, exp_hi : int
        The range of the power of two k (-1074 reaches float64's smallest subnormal; use
        -149..127 for float32).
    specials : bool
        Whether a NaN, +inf or -inf may replace one element (one draw in three).

    Returns
    -------
    SearchStrategy of list of float
        The amax ``2**k`` itself, its float64 neighbours below and above, or ``2**k * u`` with
        u in [1, 2); the other elements are amax times draws from [-1, 1], in a drawn order.
    """
    k = draw(st.integers(exp_lo, exp_hi))
    kind = draw(st.sampled_from(AMAX_KINDS))
    base = math.ldexp(1.0, k)
    amax = {"below": math.nextafter(base, 0), "at": base,
            "above": math.nextafter(base, math.inf),
            "random": base * draw(st.floats(1, 2, exclude_max=True))}[kind]
    block = [amax * draw(st.floats(-1, 1)) for _ in range(size - 1)]
    block.append(amax * draw(st.sampled_from([1, -1])))
    special = draw(st.sampled_from([None] * 6 + [math.nan, math.inf, -math.inf])) \
        if specials else None
    if special is not None:
        block[draw(st.integers(0, size - 1))] = special
    return draw(st.permutations(block))


@st.composite
def block_arrays(draw, fmt: str | BlockFormat, max_blocks: int = 3, dtype: str = "float64",
                 specials: bool = True) -> np.ndarray:
    """A 1-D array of ``edge_blocks`` of ``fmt``'s block size in ``dtype``, the last one
    possibly cut short (1 .. block_size elements).

    For float32 / float16 the powers of two stay inside the dtype's range (from its smallest
    subnormal to its largest binade), and the values are the dtype's numbers (rounded once).
    """
    f = get_block_format(fmt)
    info = np.finfo(dtype)
    lo = int(np.log2(float(info.smallest_subnormal)))
    hi = int(np.floor(np.log2(float(info.max)))) - 1
    blocks = draw(st.lists(edge_blocks(f.block_size, lo, hi, specials), min_size=1,
                           max_size=max_blocks))
    flat = sum(blocks, [])
    keep = len(flat) - draw(st.integers(0, f.block_size - 1))
    with np.errstate(over="ignore"):
        return np.array(flat[:keep], dtype=np.float64).astype(dtype)
