"""The fused int8 head (quant.native.int8_head) against the integer pipeline's torch path.

Reference: `IntegerSoftmaxRegression.probabilities` with the int64 matmul kernel and
QUANT_NATIVE=0 (torch passes only), built directly from the same integer constants; for K
beyond int32's proof, exact Python integers and `IntegerSoftmax.from_gaps`. Every
instruction set this CPU runs is held to the reference bit for bit (so scalar = avx2 = vnni).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.integer.linear import IntegerSoftmaxRegression, quantize_softmax_regression
from quant.integer.matmul import prepare_int8_weight
from quant.integer.softmax import make_integer_softmax
from quant.native import int8_head
from quant.native.int8_head import plan_accumulation, prepare_int8_head

ISAS = int8_head.supported_isas()
needs_ext = pytest.mark.skipif(not ISAS, reason="quant.native._int8_head is not built")


def _offsets(bias: list[int], mults: list[int], shifts: list[int]) -> list[int]:
    """The documented offset: the bias times the multiplier plus the rounding half."""
    return [b * m + (1 << (s - 1)) for b, m, s in zip(bias, mults, shifts)]


def _model(codes: torch.Tensor, bias: list[int], mults: list[int], shifts: list[int],
           logit_scale: float, out: str) -> IntegerSoftmaxRegression:
    m = codes.shape[0]
    return IntegerSoftmaxRegression(
        weight=prepare_int8_weight(codes, "int64"), bias_codes=tuple(bias),
        multipliers=tuple(mults), shifts=tuple(shifts),
        softmax=make_integer_softmax(logit_scale, m, out), weight_scales=(1.0,) * m,
        weight_max=127)


def _reference(model: IntegerSoftmaxRegression, x: torch.Tensor) -> torch.Tensor:
    """The model's torch passes (QUANT_NATIVE=0), its matmul the int64 one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUANT_NATIVE", "0")
        return model.probabilities(x)


def _heads(model: IntegerSoftmaxRegression) -> list[int8_head.Int8Head]:
    off = _offsets(list(model.bias_codes), list(model.multipliers), list(model.shifts))
    return [prepare_int8_head(model.weight.codes, model.multipliers, off, model.shifts,
                              model.softmax, isa=isa) for isa in ISAS]


def _argmax(p: torch.Tensor) -> torch.Tensor:
    return (p if p.dtype == torch.uint8 else p.to(torch.int32)).argmax(1)


def _check_all(model: IntegerSoftmaxRegression, x: torch.Tensor) -> None:
    want = _reference(model, x)
    for head in _heads(model):
        got = head.probabilities(x)
        assert got.dtype == want.dtype and torch.equal(got, want), head.isa
        assert torch.equal(head.predict(x), _argmax(want)), head.isa
        assert torch.equal(head.probabilities(x, "torch"), want)


WEIGHT_RANGES = [(-128, 127), (-127, 127), (-3, 3), (0, 127), (-128, -128), (5, 5)]


@needs_ext
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 1000), m=st.integers(1, 64),
       seed=st.integers(0, 2**31), wr=st.sampled_from(WEIGHT_RANGES),
       spread=st.sampled_from([1.0, 30.0, 300.0]), out=st.sampled_from(["uint8", "uint16"]),
       logit_scale=st.floats(0.005, 0.5))
def test_bit_identical_to_int64_reference(n, k, m, seed, wr, spread, out,
                                          logit_scale):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(wr[0], wr[1] + 1, (m, k), generator=g, dtype=torch.int16)
    codes = codes.to(torch.int8)
    x = torch.randint(0, 256, (n, k), generator=g, dtype=torch.uint8)
    x[0] = 255                                       # the extreme row
    # Shifts that put the logits' spread near `spread` steps, so the softmax sees them.
    acc_scale = 255 * max(abs(wr[0]), abs(wr[1]), 1) * math.sqrt(k) / 2 + 1
    base = min(62, max(1, round(math.log2(acc_scale * 2**30.5 / spread))))
    mults = torch.randint(1 << 30, 1 << 31, (m,), generator=g).tolist()
    shifts = [min(62, max(1, base + d)) for d in torch.randint(-1, 2, (m,), generator=g).tolist()]
    bias = torch.randint(-int(acc_scale), int(acc_scale) + 1, (m,), generator=g).tolist()
    _check_all(_model(codes, bias, mults, shifts, logit_scale, out), x)


@needs_ext
@pytest.mark.parametrize("k", [1, 15, 16, 17, 63, 64, 65, 784, 1000, 4096])
@pytest.mark.parametrize("out", ["uint8", "uint16"])
@pytest.mark.parametrize("tiles", [1, 4])
def test_extreme_operands(k, out, tiles):
    """All-255 pixels against rows of +127, -127, -128, alternating and zero codes: the
    accumulators' extremes (-255 * 128 * k, 255 * 127 * k), where a 16-bit pair sum would clip.
    The shift makes the logits acc / 2**18-ish, so any accumulator error shows in the codes."""
    rows = [[127] * k, [-127] * k, [-128] * k, [127, -128] * (k // 2) + [127] * (k % 2),
            [0] * k, [64] * k, [-65] * k, [1] * k, [-1] * k, [100] * k]
    codes = torch.tensor(rows * tiles, dtype=torch.int8)   # 40 classes: several SIMD groups
    m = codes.shape[0]
    shift = 30 + max(1, (255 * 128 * k).bit_length() - 8)
    model = _model(codes, [0] * m, [1 << 30] * m, [shift] * m, 0.02, out)
    x = torch.full((3, k), 255, dtype=torch.uint8)
    x[1] = 0
    x[2, ::2] = 0
    _check_all(model, x)


@needs_ext
@pytest.mark.parametrize("m", [65, 200])
def test_many_classes(m):
    """Beyond 64 classes the per-thread scratch is allocated, not on the stack."""
    g = torch.Generator().manual_seed(m)
    codes = torch.randint(-128, 128, (m, 100), generator=g, dtype=torch.int16).to(torch.int8)
    mults = torch.randint(1 << 30, 1 << 31, (m,), generator=g).tolist()
    bias = torch.randint(-5000, 5000, (m,), generator=g).tolist()
    model = _model(codes, bias, mults, [40] * m, 0.05, "uint16")
    _check_all(model, torch.randint(0, 256, (130, 100), generator=g, dtype=torch.uint8))


@needs_ext
def test_trained_shape_model_and_threads():
    """A quantize_softmax_regression model (784 x 10), batches across the thread split."""
    g = torch.Generator().manual_seed(5)
    pipe = quantize_softmax_regression(torch.randn(10, 784, generator=g) * 0.05,
                                       torch.randn(10, generator=g))
    model = _model(pipe.weight.codes, list(pipe.bias_codes), list(pipe.multipliers),
                   list(pipe.shifts), pipe.logit_scale, "uint8")     # the same, on int64
    x = torch.randint(0, 256, (1000, 784), generator=g, dtype=torch.uint8)
    threads = torch.get_num_threads()
    try:
        for t in sorted({1, 2, 3, threads}):
            torch.set_num_threads(t)
            _check_all(model, x)
    finally:
        torch.set_num_threads(threads)


def test_plan_chooses_from_the_proof():
    """int32 holds while K * 255 * 128 <= 2**31 (for -128 codes) or K * 255 * 127 <= 2**31 - 1
    (symmetric codes); beyond that only scalar int64 sums are exact."""
    for wr, per_term in (((-128, 127), 255 * 128), ((-127, 127), 255 * 127),
                         ((0, 127), 255 * 127)):
        limit = (2**31 if wr[0] == -128 else 2**31 - 1) // per_term
        fits = plan_accumulation(wr, limit)
        assert fits.accumulator_bits == 32 and fits.isas == ("avx512_vnni", "avx2", "scalar")
        over = plan_accumulation(wr, limit + 1)
        assert over.accumulator_bits == 64 and over.isas == ("scalar",)
        assert "can overflow" in over.proofs["int32"].reason and over.proofs["int64"].fits
    assert plan_accumulation((-128, 127), 65_793).accumulator_bits == 32
    assert plan_accumulation((-128, 127), 65_794).accumulator_bits == 64
    with pytest.raises(ValueError, match="int64 sums can overflow"):
        plan_accumulation((-128, 127), 2**49)
    with pytest.raises(ValueError, match="within int8"):
        plan_accumulation((-129, 0), 10)
    with pytest.raises(ValueError, match="in_features"):
        plan_accumulation((0, 1), 0)


@needs_ext
@pytest.mark.parametrize("out", ["uint8", "uint16"])
def test_beyond_int32_takes_int64_sums(out):
    """K = 70,000 full-range products overflow int32 (-255 * 128 * 70,000 < -2**31): the
    head sums in int64 (scalar) and matches exact Python integers; SIMD isas are refused."""
    k = 70_000
    codes = torch.tensor([[-128] * k, [127] * k, [3, -128] * (k // 2)], dtype=torch.int8)
    mults, shifts, bias = [1 << 30] * 3, [30 + 26] * 3, [0, 5, -7]
    sm = make_integer_softmax(0.03, 3, out)
    head = prepare_int8_head(codes, mults, _offsets(bias, mults, shifts), shifts, sm)
    assert head.isa == "scalar" and head.plan.accumulator_bits == 64
    x = torch.full((2, k), 255, dtype=torch.uint8)
    x[1, 1::2] = 0
    z = []
    for row in x.tolist():
        acc = [sum(p * w for p, w in zip(row, c)) for c in codes.tolist()]
        assert min(acc) < -2**31 or row[1] == 0
        z.append([(a * mm + o) >> s for a, mm, o, s in
                  zip(acc, mults, _offsets(bias, mults, shifts), shifts)])
    gaps = torch.tensor([[min(max(r) - v, 255) for v in r] for r in z])
    want = sm.from_gaps(gaps)
    assert torch.equal(head.probabilities(x), want)
    assert torch.equal(head.probabilities(x, "torch"), want)
    for isa in ("avx2", "avx512_vnni"):
        with pytest.raises(ValueError, match="not exact for these weights.*int32 can overflow"):
            prepare_int8_head(codes, mults, _offsets(bias, mults, shifts), shifts, sm, isa=isa)
    from quant.native import _int8_head           # the C side refuses it on its own, too
    with pytest.raises(ValueError, match="int32 sums could overflow"):
        _int8_head.prepare(codes.numpy(), 3, k, torch.tensor(mults).numpy(),
                           torch.tensor(_offsets(bias, mults, shifts)).numpy(),
                           torch.tensor(shifts).numpy(),
                           torch.tensor(sm.table, dtype=torch.int64).numpy(),
                           sm.reciprocal_bits, sm.prob_max, 1 if out == "uint8" else 2, 0, 0)


def _small_head(isa: str = "auto") -> int8_head.Int8Head:
    codes = torch.tensor([[127, -128, 3], [-5, 9, 0]], dtype=torch.int8)
    return prepare_int8_head(codes, [1 << 30] * 2, [1 << 30] * 2, [40] * 2,
                             make_integer_softmax(0.05, 2), isa=isa)


@needs_ext
def test_describe_and_openmp(monkeypatch):
    monkeypatch.delenv("QUANT_NATIVE", raising=False)     # this test switches it itself
    assert int8_head.available()
    line = int8_head.describe()
    assert line.startswith(f"compiled int8 head ({ISAS[0]}) on ")
    from quant.native import _int8_head
    if _int8_head.openmp_library():                  # built with OpenMP: torch's own runtime
        assert line.endswith("torch's OpenMP threads")
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert int8_head.describe() == "torch passes (QUANT_NATIVE=0)"
    assert not int8_head.available()
    head = _small_head()                              # QUANT_NATIVE=0: the torch passes
    x = torch.tensor([[255, 0, 7]], dtype=torch.uint8)
    assert torch.equal(head.probabilities(x), head.probabilities(x, "native"))


@needs_ext
def test_isa_selection(monkeypatch):
    assert _small_head().isa == ISAS[0]
    assert "scalar" in ISAS
    monkeypatch.setenv(int8_head.ENV_ISA, "scalar")
    assert _small_head().isa == "scalar"
    assert _small_head("avx2" if "avx2" in ISAS else "scalar").isa in ISAS
    monkeypatch.setenv(int8_head.ENV_ISA, "sse9")
    with pytest.raises(ValueError, match="QUANT_INT8_HEAD='sse9': unknown instruction set"):
        _small_head()
    with pytest.raises(ValueError, match="isa='neon': unknown"):
        _small_head("neon")
    monkeypatch.setattr(int8_head, "supported_isas", lambda: ("scalar",))
    with pytest.raises(ValueError, match="this CPU runs only"):
        _small_head("avx2")


@needs_ext
def test_input_errors_and_views():
    head = _small_head()
    with pytest.raises(TypeError, match="uint8 pixels, got torch.float32.*not scaled floats"):
        head.probabilities(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="uint8 pixels, got torch.int8"):
        head.predict(torch.zeros(2, 3, dtype=torch.int8))
    with pytest.raises(TypeError, match="not list"):
        head.probabilities([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"shape \(N, 3\), got \(2, 4\)"):
        head.probabilities(torch.zeros(2, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 3\), got \(3,\)"):
        head.probabilities(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="runs on the CPU; input is on meta"):
        head.probabilities(torch.zeros(2, 3, dtype=torch.uint8, device="meta"))
    with pytest.raises(ValueError, match="implementation must be"):
        head.probabilities(torch.zeros(2, 3, dtype=torch.uint8), "cuda")
    assert head.accepts(torch.zeros(2, 3, dtype=torch.uint8))
    for bad in (torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.uint8), [[1, 2, 3]],
                torch.zeros(1, 2, 3, dtype=torch.uint8),
                torch.zeros(2, 3, dtype=torch.uint8, device="meta")):
        assert not head.accepts(bad)
    base = torch.randint(0, 256, (3, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    view = base[:, 1:7:2]                             # strided: copied, same answer
    assert not view.is_contiguous()
    assert torch.equal(head.probabilities(view), head.probabilities(view.contiguous()))
    assert torch.equal(head.probabilities(view), head.probabilities(view, "torch"))
    empty = torch.zeros(0, 3, dtype=torch.uint8)
    assert head.probabilities(empty).shape == (0, 2) and head.predict(empty).shape == (0,)
    assert head.probabilities(empty, "torch").shape == (0, 2)


@needs_ext
def test_copies_prepare_again():
    import copy
    import pickle
    head = _small_head("scalar")
    x = torch.tensor([[255, 0, 7], [1, 2, 3]], dtype=torch.uint8)
    for twin in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
        assert twin.isa == "scalar" and twin._capsule is not head._capsule
        assert torch.equal(twin.probabilities(x), head.probabilities(x))


def test_prepare_errors():
    sm = make_integer_softmax(0.05, 2)
    w = torch.ones(2, 3, dtype=torch.int8)
    one = [1 << 30] * 2
    with pytest.raises(TypeError, match="int8 torch.Tensor"):
        prepare_int8_head(w.float(), one, one, [40] * 2, sm)
    with pytest.raises(ValueError, match="non-empty"):
        prepare_int8_head(torch.ones(2, 0, dtype=torch.int8), one, one, [40] * 2, sm)
    with pytest.raises(ValueError, match=r"shifts must be a \(2,\) CPU vector"):
        prepare_int8_head(w, one, one, [40] * 3, sm)
    with pytest.raises(TypeError, match="offsets must hold integers"):
        prepare_int8_head(w, one, [0.5, 1.0], [40] * 2, sm)
    with pytest.raises(ValueError, match="shifts must lie in 1..62"):
        prepare_int8_head(w, one, one, [0, 40], sm)
    with pytest.raises(ValueError, match="multipliers in 0..2"):
        prepare_int8_head(w, [1 << 31, 1], one, [40] * 2, sm)
    with pytest.raises(ValueError, match="built for 3 classes"):
        prepare_int8_head(w, one, one, [40] * 2, make_integer_softmax(0.05, 3))
    codes = w.clone()
    head = prepare_int8_head(codes, one, one, [40] * 2, sm)
    codes.fill_(-1)                                   # the head holds its own copy
    assert torch.equal(head.codes, w)


@needs_ext
def test_model_takes_the_fused_call(monkeypatch):
    """IntegerSoftmaxRegression.probabilities/predict run as one int8-head call for uint8
    (N, K) CPU input, bit-identical to the model's torch passes; other inputs (3-D images),
    QUANT_NATIVE=0 and the int64 reference kernel take the existing paths, same answer."""
    monkeypatch.delenv("QUANT_NATIVE", raising=False)     # this test switches it itself
    g = torch.Generator().manual_seed(11)
    w, b = torch.randn(10, 49, generator=g), torch.randn(10, generator=g)
    pipe = quantize_softmax_regression(w, b)
    x = torch.randint(0, 256, (300, 49), generator=g, dtype=torch.uint8)
    want = _reference(pipe, x)
    from quant.native import _int8_head
    calls = []
    run = _int8_head.run
    monkeypatch.setattr(_int8_head, "run", lambda *a: calls.append(a[2]) or run(*a))
    assert torch.equal(pipe.probabilities(x), want) and calls == [300]
    assert torch.equal(pipe.predict(x), _argmax(want)) and calls == [300, 300]
    assert torch.equal(pipe.probabilities(x.reshape(300, 7, 7)), want) and len(calls) == 2
    strided = x.t().contiguous().t()
    assert torch.equal(pipe.probabilities(strided), want) and calls == [300] * 3
    reference = quantize_softmax_regression(w, b, kernel="int64")
    assert torch.equal(reference.probabilities(x), want) and len(calls) == 3
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert torch.equal(pipe.predict(x), _argmax(want)) and len(calls) == 3
