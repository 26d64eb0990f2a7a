"""Counter-based uniforms for stochastic rounding: the same bits on any thread count, in numpy
and in torch.

Element i (its flat, row-major index in the input) gets u_i = splitmix64(seed + (i + 1) * G)
>> 11, divided by 2**53: 53 random bits, a function of (seed, i) alone, so chunking, threads and
the array library do not change a single draw. splitmix64 is Steele, Lea and Flood's mixing
function (the one that seeds java.util.SplittableRandom and xoshiro); its outputs over
consecutive counters pass BigCrush.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

__all__ = ["GOLDEN", "resolve_seed", "uniforms", "uniform_bits"]

GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    return c - (1 << 64) if c >= 1 << 63 else c


def resolve_seed(seed: Any = None, generator: Any = None) -> int:
    """The 64-bit seed of a stochastic rounding.

    Parameters
    ----------
    seed : int, optional
        Used as it is (mod 2**64).
    generator : numpy.random.Generator or torch.Generator, optional
        One 64-bit seed is drawn from it (advancing it), when ``seed`` is not given.

    Returns
    -------
    int
        In [0, 2**64); fresh OS entropy when neither is given (not reproducible).

    Raises
    ------
    ValueError
        For both given, or a seed that is not an int.
    """
    if seed is not None and generator is not None:
        raise ValueError("pass seed= or generator=, not both")
    if seed is not None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, not {seed!r}")
        return int(seed) & _MASK64
    if generator is None:
        return secrets.randbits(64)
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, 2**63, dtype=np.int64)) * 2 + int(generator.integers(2))
    if type(generator).__module__.startswith("torch") and hasattr(generator, "manual_seed"):
        import torch

        hi = int(torch.randint(0, 2**62, (1,), generator=generator))
        lo = int(torch.randint(0, 4, (1,), generator=generator))
        return (hi << 2) | lo
    raise ValueError(f"generator must be a numpy.random.Generator or torch.Generator, "
                     f"not {type(generator).__name__}")


def uniform_bits(seed: int, start: int, count: int, xp: Any = np, device: Any = None) -> Any:
    """The 53 random bits K_i of flat indices ``start .. start + count - 1`` (u_i = K_i / 2**53).

    Parameters
    ----------
    seed : int
        From `resolve_seed`.
    start, count : int
        The index range.
    xp : module
        numpy (uint64 result) or torch (int64 arithmetic, which wraps like uint64; shifts
        masked to be logical).
    device : torch.device, optional
        Where torch's draws live.

    Returns
    -------
    array
        Integers in [0, 2**53), shape (count,); numpy and torch give the same values.
    """
    if xp is np:
        i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(seed) + i * np.uint64(GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
        z = z ^ (z >> np.uint64(31))
        return z >> np.uint64(11)
    import torch

    def shr(v, k):                                   # logical right shift of int64 bits
        return (v >> k) & ((1 << (64 - k)) - 1)

    i = torch.arange(start + 1, start + count + 1, dtype=torch.int64, device=device)
    z = i * _signed(GOLDEN) + _signed(seed)
    z = (z ^ shr(z, 30)) * _signed(_M1)
    z = (z ^ shr(z, 27)) * _signed(_M2)
    z = z ^ shr(z, 31)
    return shr(z, 11)


def uniforms(seed: int, start: int, count: int, xp: Any = np, device: Any = None) -> Any:
    """u_i = K_i / 2**53 (`uniform_bits`) for flat indices ``start .. start + count - 1``.

    Parameters
    ----------
    seed : int
    start, count : int
    xp : module
        numpy or torch.
    device : torch.device, optional

    Returns
    -------
    array
        float64 multiples of 2**-53 in [0, 1), shape (count,); the same in numpy and torch.
    """
    k = uniform_bits(seed, start, count, xp, device)
    if xp is np:
        return k.astype(np.float64) * 2.0**-53
    import torch

    return k.to(torch.float64) * 2.0**-53
