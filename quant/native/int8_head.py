"""The whole integer softmax-regression head in one compiled call per batch.

``Int8Head`` runs, for uint8 pixels ``x`` (N, K) and int8 weight codes ``w`` (M, K), in one C
call (`quant.native._int8_head`, built from ``quant/native/int8_head.c``)::

    acc = x @ w.T                                exact (int32 or int64 sums, by proof)
    z   = (acc * multipliers + offsets) >> shifts   per class, int64, arithmetic shift
    d   = min(max(z) - z, 255)                   per row
    p   = softmax.from_gaps(d)                   exp table, int64 sum, one reciprocal per row

which is `quant.integer.linear.IntegerSoftmaxRegression.probabilities` bit for bit (its torch
path, with the int64 matmul, is the reference the tests hold this to). The constants -- the
weights laid out for the instruction set, multipliers, offsets, shifts, the exp table -- are
checked and built once by `prepare_int8_head`; a call only checks ``x`` and allocates the
output.

Exactness is proven, not hoped for (`plan_accumulation`): `quant.accumulator_bound` over the
weight codes' range and pixels in [0, 255] picks the instruction sequence:

* ``"avx512_vnni"``: ``vpdpbusd`` adds four u8 x s8 products (each exact in 16 bits:
  ``accumulator_bound(pixels, w, 1, 16)``) straight into int32 lanes, never saturating.
* ``"avx2"``: pixels zero-extended to int16, ``vpmaddwd`` with int16 weights (a pair of
  products summed in int32: ``accumulator_bound(pixels, w, 2, 32)``; 2 * 255 * 128 = 65280
  fits int32 though not int16, which is why ``vpmaddubsw`` is never used), ``vpaddd``.
* ``"scalar"``: portable C.

All three need every partial sum of the K products to fit int32
(``accumulator_bound(pixels, w, K, 32)``; each SIMD lane and each step of the final horizontal
add is a sum of a subset of the products, which that bound covers). Where it fails (K beyond
~65,000 full-range features) only ``"scalar"`` remains, summing in int64 under the int64 proof;
beyond that `prepare_int8_head` refuses. The instruction set is the fastest one the proof
allows and the CPU runs (checked at run time, so the module runs on any x86-64), unless
``isa=`` or the environment variable ``QUANT_INT8_HEAD`` names one.

Rows are split over ``torch.get_num_threads()`` threads of torch's own OpenMP team when the
extension shares torch's OpenMP runtime (as `quant.native` checks); otherwise one thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from numfmt.threads import import_extension, uses_torch_openmp

from .int8_plan import ISAS, AccumulationPlan, plan_accumulation

if TYPE_CHECKING:
    from quant.integer.softmax import IntegerSoftmax

# After torch (its OpenMP team); None: no compiler at install time, the torch paths only.
_int8_head = import_extension("quant.native._int8_head")

__all__ = ["ISAS", "ENV_ISA", "Implementation", "AccumulationPlan", "Int8Head", "available",
           "describe", "supported_isas", "plan_accumulation", "prepare_int8_head"]

ENV_ISA = "QUANT_INT8_HEAD"             # "auto" or one of ISAS: overrides isa="auto"
Implementation = Literal["native", "torch"]
_ISA_CODE = {"scalar": 0, "avx2": 1, "avx512_vnni": 2}
_MODE_PROBABILITIES, _MODE_ARGMAX = 0, 1
_ROWS_PER_THREAD = 64                   # the C loop's work item; fewer rows stay on one thread


_SHARED_OPENMP = uses_torch_openmp(_int8_head.openmp_library() if _int8_head is not None else None)


def available() -> bool:
    """True if the extension is built and not disabled by ``QUANT_NATIVE=0``."""
    return _int8_head is not None and os.environ.get("QUANT_NATIVE", "1") != "0"


def describe() -> str:
    """One line saying whether the fused head runs, its fastest instruction set here and its
    threads (e.g. "compiled int8 head (avx512_vnni) on torch's OpenMP threads")."""
    if not available():
        return "torch passes (" + ("QUANT_NATIVE=0" if _int8_head is not None
                                   else "quant.native._int8_head is not built") + ")"
    threads = "torch's OpenMP threads" if _SHARED_OPENMP else "one thread"
    return f"compiled int8 head ({supported_isas()[0]}) on {threads}"


def supported_isas() -> tuple[str, ...]:
    """The instruction sets this CPU runs, fastest first (``()`` if the extension is not
    built); ``"scalar"`` is always among them when it is."""
    return tuple(_int8_head.isas()) if _int8_head is not None else ()


def _input_error(x: Any, in_features: int) -> Exception:
    if not isinstance(x, torch.Tensor):
        return TypeError(f"input must be a torch.Tensor of uint8 pixels, not {type(x).__name__}")
    if x.dtype != torch.uint8:
        hint = " (pass the raw uint8 pixels, not scaled floats)" if x.dtype.is_floating_point \
            else ""
        return TypeError(f"input must hold uint8 pixels, got {x.dtype}{hint}")
    if x.device.type != "cpu":
        return ValueError(f"the int8 head runs on the CPU; input is on {x.device}")
    return ValueError(f"input must have shape (N, {in_features}), got {tuple(x.shape)}")


def _threads(rows: int) -> int:
    if not _SHARED_OPENMP or rows <= _ROWS_PER_THREAD:
        return 1
    return max(1, min(torch.get_num_threads(), rows // _ROWS_PER_THREAD))


@dataclass(frozen=True)
class Int8Head:
    """A prepared integer head: uint8 pixels (N, K) -> probability codes (N, M).

    Build with `prepare_int8_head`. ``probabilities(x)`` and ``predict(x)`` compute the
    module docstring's pipeline; ``isa`` is the instruction sequence the compiled call runs
    (None when the extension is not built: then only the torch passes run), ``plan`` the
    proofs that allowed it; ``prob_dtype`` is torch.uint8 or torch.uint16 (probability = code
    / the softmax's largest code). The tensors are private copies of what the caller gave.
    """

    codes: torch.Tensor = field(repr=False)
    multipliers: torch.Tensor = field(repr=False)
    offsets: torch.Tensor = field(repr=False)
    shifts: torch.Tensor = field(repr=False)
    softmax: IntegerSoftmax = field(repr=False)
    plan: AccumulationPlan = field(repr=False)
    isa: str | None
    _capsule: Any = field(default=None, repr=False, compare=False)
    in_features: int = field(init=False)
    num_classes: int = field(init=False)
    prob_dtype: torch.dtype = field(init=False)

    def __post_init__(self) -> None:
        # Plain attributes: read on every call, where a property's cost would show.
        object.__setattr__(self, "num_classes", self.codes.shape[0])
        object.__setattr__(self, "in_features", self.codes.shape[1])
        object.__setattr__(self, "prob_dtype", self.softmax.prob_dtype)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The compiled constants live in a capsule, which cannot be copied or pickled: a copy
        # is prepared again, on the instruction set it had if that CPU runs it.
        isa = self.isa if self.isa in supported_isas() else "auto"
        return (_prepared_again, (self.codes, self.multipliers, self.offsets, self.shifts,
                                  self.softmax, isa))

    def accepts(self, x: Any) -> bool:
        """Whether ``x`` is an input `probabilities` takes: a uint8 (N, K) CPU tensor (any
        strides). Never raises; lets a caller with its own error messages route its inputs."""
        # is_cpu, not device.type: this check is most of a batch-1 call's Python time.
        return isinstance(x, torch.Tensor) and x.is_cpu and x.dtype == torch.uint8 \
            and x.dim() == 2 and x.shape[1] == self.in_features

    def _checked(self, x: Any) -> torch.Tensor:
        if not self.accepts(x):
            raise _input_error(x, self.in_features)
        return x if x.is_contiguous() else x.contiguous()

    def _native(self, implementation: Implementation | None) -> bool:
        if implementation is None:
            return self._capsule is not None and available()
        if implementation == "native":
            if self._capsule is None:
                raise RuntimeError("quant.native._int8_head is not built (no C compiler at "
                                   "install time?); use implementation='torch'")
            return True
        if implementation == "torch":
            return False
        raise ValueError(f"implementation must be 'native', 'torch' or None, not "
                         f"{implementation!r}")

    def _gaps(self, x: torch.Tensor) -> torch.Tensor:
        acc = x.to(torch.int64) @ self.codes.to(torch.int64).T
        z = torch.addcmul(self.offsets, acc, self.multipliers)
        z >>= self.shifts
        return (z.amax(1, keepdim=True) - z).clamp_(max=255)

    def probabilities(self, x: torch.Tensor,
                      implementation: Implementation | None = None) -> torch.Tensor:
        """Probability codes (N, M) of `prob_dtype` for uint8 pixels ``x`` (N, K).

        Parameters
        ----------
        x : torch.Tensor
            uint8 (N, K) on the CPU, N >= 0; a non-contiguous view is copied first.
        implementation : {"native", "torch"} or None
            The compiled call or the torch passes (the reference); None picks "native" when
            the extension is built and ``QUANT_NATIVE`` is not "0".

        Returns
        -------
        torch.Tensor
            A new (N, M) tensor; the two implementations agree bit for bit.

        Raises
        ------
        TypeError
            If ``x`` is not a uint8 tensor.
        ValueError
            If ``x`` is not (N, K), or not on the CPU (CUDA and meta tensors included).
        RuntimeError
            If "native" is asked for and the extension is not built.
        """
        x = self._checked(x)
        if not self._native(implementation):
            return self.softmax.from_gaps(self._gaps(x)) if x.shape[0] else \
                torch.empty((0, self.num_classes), dtype=self.prob_dtype)
        return self.run_accepted(x)

    def run_accepted(self, x: torch.Tensor) -> torch.Tensor:
        """`probabilities` by the compiled call, for an ``x`` that `accepts` has taken.

        For callers that route their inputs with `accepts` (as `IntegerSoftmaxRegression`
        does): nothing is checked again, since at batch 1 every microsecond of Python is a
        tenth of the call. Needs the extension (``isa`` not None).

        Parameters
        ----------
        x : torch.Tensor
            uint8 (N, K) on the CPU, ``accepts(x)`` True; a non-contiguous view is copied.

        Returns
        -------
        torch.Tensor
            A new (N, M) tensor of `prob_dtype`.
        """
        if not x.is_contiguous():
            x = x.contiguous()
        rows = x.shape[0]
        out = torch.empty(rows, self.num_classes, dtype=self.prob_dtype)  # no shape tuple: ~1 us
        if rows:
            _int8_head.run(self._capsule, x.data_ptr(), rows, out.data_ptr(), _threads(rows),
                           _MODE_PROBABILITIES)
        return out

    __call__ = probabilities

    def predict(self, x: torch.Tensor,
                implementation: Implementation | None = None) -> torch.Tensor:
        """The class of each row's largest probability code, the first on ties.

        Parameters
        ----------
        x, implementation
            As for `probabilities` (and the same errors).

        Returns
        -------
        torch.Tensor
            int64 (N,): ``probabilities(x).argmax(1)``, without storing the codes.
        """
        x = self._checked(x)
        if not self._native(implementation):
            p = self.probabilities(x, "torch")
            return (p if p.dtype == torch.uint8 else p.to(torch.int32)).argmax(1)
        rows = x.shape[0]
        out = torch.empty(rows, dtype=torch.int64)
        if rows:
            _int8_head.run(self._capsule, x.data_ptr(), rows, out.data_ptr(), _threads(rows),
                           _MODE_ARGMAX)
        return out


def _per_class(v: Any, name: str, m: int) -> torch.Tensor:
    t = torch.as_tensor(v) if not isinstance(v, torch.Tensor) else v.detach()
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got {t.dtype}")
    if t.shape != (m,) or t.device.type != "cpu":
        raise ValueError(f"{name} must be a ({m},) CPU vector (one per class), got shape "
                         f"{tuple(t.shape)} on {t.device}")
    return t.to(torch.int64).clone()


def _resolve_isa(isa: str, plan: AccumulationPlan) -> str:
    if isa == "auto":
        isa = os.environ.get(ENV_ISA, "auto").strip().lower() or "auto"
        if isa == "auto":
            return next(i for i in plan.isas if i in supported_isas())
        origin = f"{ENV_ISA}={isa!r}"
    else:
        origin = f"isa={isa!r}"
    if isa not in ISAS:
        raise ValueError(f"{origin}: unknown instruction set; choose 'auto' or one of {ISAS}")
    if isa not in plan.isas:
        raise ValueError(f"{origin} is not exact for these weights: {plan.why_not(isa)}")
    if isa not in supported_isas():
        raise ValueError(f"{origin}: this CPU runs only {supported_isas()}")
    return isa


def prepare_int8_head(weight_codes: torch.Tensor, multipliers: Any, offsets: Any, shifts: Any,
                      softmax: IntegerSoftmax, *, isa: str = "auto") -> Int8Head:
    """Check the integer head's constants once and lay them out for the compiled call.

    Parameters
    ----------
    weight_codes : torch.Tensor
        int8 (M, K) CPU codes (copied, never modified).
    multipliers, offsets, shifts : sequence of int or integer torch.Tensor
        Per class (M,): ``z = (acc * multipliers + offsets) >> shifts`` in int64, with
        multipliers in [0, 2**31) and shifts in 1..62 (`quant.fixedpoint.quantize_multiplier`;
        the offsets carry the bias and the rounding half, as `IntegerSoftmaxRegression`'s).
    softmax : quant.integer.softmax.IntegerSoftmax
        The softmax for M classes (its table, reciprocal bits and output type).
    isa : str
        "auto" (the ``QUANT_INT8_HEAD`` environment variable if set, else the fastest exact
        one the CPU runs) or one of `ISAS`.

    Returns
    -------
    Int8Head

    Raises
    ------
    TypeError
        If the codes are not an int8 tensor or a per-class vector holds non-integers.
    ValueError
        On shape mismatches, parameters out of range, a non-CPU tensor, an unknown
        instruction set, one the proof does not allow (`plan_accumulation`) or the CPU lacks.

    Examples
    --------
    >>> import torch
    >>> from quant.integer.softmax import make_integer_softmax
    >>> w = torch.tensor([[127, -127], [-5, 9]], dtype=torch.int8)
    >>> head = prepare_int8_head(w, [1 << 30] * 2, [1 << 30] * 2, [31] * 2,
    ...                          make_integer_softmax(0.05, 2))
    >>> head.probabilities(torch.tensor([[255, 0]], dtype=torch.uint8)).tolist()
    [[255, 0]]
    """
    if not isinstance(weight_codes, torch.Tensor) or weight_codes.dtype != torch.int8:
        raise TypeError("weight codes must be an int8 torch.Tensor, got "
                        f"{getattr(weight_codes, 'dtype', type(weight_codes).__name__)}")
    if weight_codes.dim() != 2 or 0 in weight_codes.shape or weight_codes.device.type != "cpu":
        raise ValueError(f"weight codes must be a non-empty (classes, features) CPU matrix, "
                         f"got shape {tuple(weight_codes.shape)} on {weight_codes.device}")
    codes = weight_codes.detach().contiguous().clone()
    m, k = codes.shape
    mult, off, sh = (_per_class(v, name, m) for v, name in
                     ((multipliers, "multipliers"), (offsets, "offsets"), (shifts, "shifts")))
    if not ((sh >= 1) & (sh <= 62)).all() or not ((mult >= 0) & (mult < 2**31)).all():
        raise ValueError("shifts must lie in 1..62 and multipliers in 0..2**31-1")
    if softmax.num_classes != m:
        raise ValueError(f"the softmax is built for {softmax.num_classes} classes, the weights "
                         f"have {m}")
    table = torch.tensor(softmax.table, dtype=torch.int64)
    if table.shape != (256,) or not 0 < softmax.table[0] or \
            not all(0 <= e <= softmax.table[0] for e in softmax.table):
        raise ValueError("the softmax table must hold 256 entries in 0..table[0], table[0] > 0")
    lo, hi = (int(v) for v in torch.aminmax(codes))
    plan = plan_accumulation((lo, hi), k)
    if _int8_head is None:
        return Int8Head(codes, mult, off, sh, softmax, plan, None)
    chosen = _resolve_isa(isa, plan)
    capsule = _int8_head.prepare(
        codes.numpy(), m, k, mult.numpy(), off.numpy(), sh.numpy(), table.numpy(),
        softmax.reciprocal_bits, softmax.prob_max, 1 if softmax.prob_dtype == torch.uint8 else 2,
        _ISA_CODE[chosen], int(plan.accumulator_bits == 64))
    return Int8Head(codes, mult, off, sh, softmax, plan, chosen, capsule)


def _prepared_again(codes: torch.Tensor, multipliers: torch.Tensor, offsets: torch.Tensor,
                    shifts: torch.Tensor, softmax: IntegerSoftmax, isa: str) -> Int8Head:
    return prepare_int8_head(codes, multipliers, offsets, shifts, softmax, isa=isa)
