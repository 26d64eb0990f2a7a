"""quant.scaled.calibrate: observed ranges, scales for a range, MSE search, reach checks.

References: numpy's percentile / quantile, the scale formulas in exact Fractions, and the
squared error of every candidate evaluated independently in numpy.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import EncodingRangeError
from quant.metrics import quantile_rows
from quant.scaled.calibrate import calibrate, check_reachable, observed_range, scale_for_range

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(st.lists(finite, min_size=1, max_size=200), st.floats(0.0, 1.0))
@settings(max_examples=80, deadline=None)
def test_quantile_rows_is_numpy_quantile(values, q):
    rows = torch.tensor([values], dtype=torch.float32)
    want = np.quantile(np.array(values, dtype=np.float32).astype(np.float64), q)
    assert float(quantile_rows(rows, q)[0]) == pytest.approx(float(want), rel=1e-12, abs=1e-12)


def test_observed_range_per_channel_and_percentile():
    g = torch.Generator().manual_seed(0)
    x3 = torch.randn(2, 3, 50, generator=g)
    lo, hi = observed_range(x3)
    rows = x3.transpose(0, 1).reshape(3, -1).numpy()
    assert lo.tolist() == rows.min(1).astype(np.float64).tolist()
    assert hi.tolist() == rows.max(1).astype(np.float64).tolist()
    plo, phi = observed_range(x3, "percentile", 90.0)
    assert phi.numpy() == pytest.approx(np.percentile(rows.astype(np.float64), 90, axis=1))
    assert plo.numpy() == pytest.approx(np.percentile(rows.astype(np.float64), 10, axis=1))
    with pytest.raises(ValueError, match="empty"):
        observed_range(torch.empty(1, 1, 0))
    with pytest.raises(ValueError, match="percentile"):
        observed_range(x3, "percentile", 0.0)


@given(st.floats(-1e3, 0.0), st.floats(0.0, 1e3), st.integers(-128, 0))
@settings(max_examples=80, deadline=None)
def test_scale_for_range_formulas(lo, hi, zp):
    lo_t, hi_t = torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64)
    s, z = scale_for_range(lo_t, hi_t, -128, 127, zp)
    # the documented formulas, each quotient correctly rounded to float64 (as IEEE divides)
    cands = [0.0, float(Fraction(hi) / (127 - zp))]
    if zp > -128:                                   # the negative side has codes below zp
        cands.append(float(Fraction(lo) / (-128 - zp)))
    raw = max(cands)
    want = float(np.float32(raw)) if raw > 0 else 1.0
    assert float(s) == max(want, 2.0 ** -126) and int(z) == zp
    s2, z2 = scale_for_range(lo_t, hi_t, 0, 255, None)          # asymmetric: 0 is a code
    if hi > lo:
        assert 0 <= int(z2) <= 255
        width = float(Fraction(float(Fraction(hi) - Fraction(lo))) / 255)
        want2 = max(float(np.float32(width)), 2.0 ** -126) if width > 0 else 1.0
        assert float(s2) == want2


def test_mse_search_never_loses_to_min_max():
    g = torch.Generator().manual_seed(5)
    x = torch.distributions.StudentT(2.0).sample((1, 4, 2000)).to(torch.float32)
    rows = x.transpose(0, 1).reshape(4, -1).double().numpy()

    def sq_err(s, z):
        s, z = s.numpy()[:, None], z.numpy()[:, None]
        q = np.clip(np.round(rows / s) + z, -127, 127)
        return (((q - z) * s - rows) ** 2).sum(1)

    s_mm, z_mm = calibrate(x, -127, 127, 0, "minmax")
    s_mse, z_mse = calibrate(x, -127, 127, 0, "mse")
    assert (sq_err(s_mse, z_mse) <= sq_err(s_mm, z_mm) * (1 + 1e-12)).all()
    assert (s_mse <= s_mm).all()                                  # clipping, never widening


def test_check_reachable_names_the_channel():
    lo = torch.tensor([-1.0, -1e45], dtype=torch.float64)
    hi = torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.raises(EncodingRangeError, match="channel 1: .*beyond float32"):
        check_reachable(lo, hi, -127, 127, 0)
    check_reachable(torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                    -127, 127, 0)                                 # zero width: scale 1.0


def test_data_whose_scale_underflows_float64_is_refused_too():
    # 5e-324 / 127 is 0 in float64: a silent scale of 1.0 would flush the value to code 0
    lo = torch.tensor([-5e-324], dtype=torch.float64)
    with pytest.raises(EncodingRangeError, match="flush"):
        check_reachable(lo, torch.zeros(1, dtype=torch.float64), -127, 127, 0)
