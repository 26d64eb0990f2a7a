"""uint8 x int8 -> int32 products: every backend exact, the accumulator range tight, bad input.

The reference is the int64 product computed here with numpy (a second library), and the
accumulator range is checked by enumerating every vertex of the input box.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quant.accumulator import accumulator_bound
from quant.integer.matmul import (ONEDNN_SAFE_WEIGHT_MAX, onednn_available, onednn_proofs,
                                  prepare_int8_weight)

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="no oneDNN int8 ops in this torch")


def _exact(x: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(np.int64) @ w.numpy().astype(np.int64).T


def _random(n: int, k: int, m: int, wmax: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, k), generator=g, dtype=torch.uint8)
    w = torch.randint(-wmax, wmax + 1, (m, k), generator=g, dtype=torch.int8)
    return x, w


@pytest.mark.parametrize("backend", ["auto", "int_mm", "int64",
                                     pytest.param("onednn", marks=needs_onednn)])
@pytest.mark.parametrize("wmax", [ONEDNN_SAFE_WEIGHT_MAX, 127])
@pytest.mark.parametrize("n,k,m", [(1, 784, 10), (37, 784, 10), (300, 97, 3), (5, 1, 1)])
def test_backends_are_exact(backend: str, n: int, k: int, m: int, wmax: int) -> None:
    x, w = _random(n, k, m, wmax, seed=n + k + m)
    x[0] = 255  # a saturated row: the largest pair sums the kernel can see
    w[0] = wmax
    prep = prepare_int8_weight(w, backend)
    out = prep.matmul(x)
    assert out.dtype == torch.int32 and out.shape == (n, m)
    np.testing.assert_array_equal(out.numpy().astype(np.int64), _exact(x, w))


@needs_onednn
def test_onednn_splits_full_range_codes_into_exact_planes() -> None:
    x, w = _random(64, 784, 10, 127, seed=1)
    x[0] = 255
    w[0, ::2], w[0, 1::2] = 127, 126     # the largest pair sums an int8 row can have
    w[1] = -128
    single = prepare_int8_weight(w.clamp(-64, 64), "onednn")
    assert single.planes == 1            # pair sums provably fit int16 as they are
    split = prepare_int8_weight(w, "onednn")
    assert split.kernel == "onednn" and split.planes == 2
    np.testing.assert_array_equal(split.matmul(x).numpy().astype(np.int64), _exact(x, w))
    (pair_hi, carrier_hi), (pair_lo, carrier_lo) = onednn_proofs(w)
    assert pair_hi.a_range == (0, 255) and pair_hi.b_range == (-64, 63) and pair_hi.fits
    assert pair_lo.b_range == (0, 1) and carrier_hi.fits and carrier_lo.fits
    # The raw kernel on the unsplit codes is what the split avoids: it saturates here.
    raw = torch.ops.onednn.qlinear_pointwise(
        x, 1.0, 0, torch.ops.onednn.qlinear_prepack(w, None), torch.ones(10),
        torch.zeros(10, dtype=torch.int64), None, 1.0, 0, torch.float32, "none", [], "")
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT"):  # no VNNI
        assert not np.array_equal(raw.numpy().astype(np.int64), _exact(x, w))


def test_full_range_weights_exact_on_int_mm() -> None:
    x, w = _random(50, 784, 10, 127, seed=2)
    w[3] = -128
    x[7] = 255
    for backend in ("int_mm", "int64"):
        out = prepare_int8_weight(w, backend).matmul(x)
        np.testing.assert_array_equal(out.numpy().astype(np.int64), _exact(x, w))


def test_onednn_safe_weight_max_is_what_the_pair_proof_allows() -> None:
    # The largest symmetric weight range whose u8*s8 pair sums provably fit int16.
    fits = [w for w in range(1, 128) if accumulator_bound((0, 255), (-w, w), 2, 16).fits]
    assert max(fits) == ONEDNN_SAFE_WEIGHT_MAX == 64
    [(pair, carrier)] = onednn_proofs(torch.full((10, 784), 64, dtype=torch.int8))
    assert pair.fits and carrier.fits and carrier.worst_case == 255 * 64 * 784


def test_proof_is_quants_bound_for_the_declared_ranges() -> None:
    _, w = _random(1, 300, 4, 50, seed=3)
    prep = prepare_int8_weight(w, "int64")
    lo, hi = int(w.min()), int(w.max())
    assert prep.proof == accumulator_bound((0, 255), (lo, hi), 300, 32)
    # and the bound is attained: all pixels 255 against the most negative code everywhere
    worst = torch.full((1, 300), 255, dtype=torch.uint8)
    wneg = torch.full((1, 300), lo, dtype=torch.int8)
    assert int(prepare_int8_weight(wneg, "int64").matmul(worst)) == prep.proof.lowest


def test_int32_overflow_is_refused() -> None:
    k = 2**31 // (255 * 127) + 1  # 127 * 255 * k > 2**31 - 1
    w = torch.full((1, k), 127, dtype=torch.int8)
    with pytest.raises(ValueError, match="int32 accumulators can overflow.*int32 can overflow"):
        prepare_int8_weight(w)


@needs_onednn
def test_onednn_refuses_accumulators_beyond_fp32_exactness() -> None:
    k = 2**24 // (255 * 64) + 1  # 255 * 64 * k > 2**24, still far from 2**31
    w = torch.full((1, k), 64, dtype=torch.int8)
    with pytest.raises(ValueError, match="fp32 output.*int25 can overflow"):
        prepare_int8_weight(w, "onednn")
    assert prepare_int8_weight(w, "auto").kernel == "int_mm"


def test_bad_inputs_have_clear_errors() -> None:
    _, w = _random(1, 16, 3, 64, seed=4)
    prep = prepare_int8_weight(w, "int64")
    with pytest.raises(TypeError, match="uint8 codes, got torch.float32.*raw uint8 pixels"):
        prep.matmul(torch.rand(2, 16))
    with pytest.raises(TypeError, match="uint8 codes, got torch.int8"):
        prep.matmul(torch.zeros(2, 16, dtype=torch.int8))
    with pytest.raises(ValueError, match=r"shape \(N, 16\), got \(2, 15\)"):
        prep.matmul(torch.zeros(2, 15, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        prep.matmul(np.zeros((2, 16), np.uint8))
    with pytest.raises(TypeError, match="weight codes must be int8"):
        prepare_int8_weight(w.float())
    with pytest.raises(ValueError, match="non-empty"):
        prepare_int8_weight(torch.zeros(3, dtype=torch.int8))
    with pytest.raises(ValueError, match="unknown integer matmul kernel 'cuda'"):
        prepare_int8_weight(w, "cuda")  # type: ignore[arg-type]
    assert prep.matmul(torch.zeros(0, 16, dtype=torch.uint8)).shape == (0, 3)


def test_weight_is_copied_not_aliased() -> None:
    _, w = _random(1, 16, 3, 64, seed=5)
    before = w.clone()
    prep = prepare_int8_weight(w, "int64")
    w.zero_()
    assert torch.equal(prep.codes, before)
