"""quant.policy: narrowing exact integers under RAISE / SATURATE / WRAP."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import OverflowPolicy, QuantOverflowError, narrow
from quant.policy import as_policy, wrap_to_dtype

wide_ints = st.lists(st.integers(-100_000, 100_000), min_size=1, max_size=40)


def test_error_is_an_overflow_error():
    assert issubclass(QuantOverflowError, OverflowError)


@given(wide_ints)
@settings(max_examples=100, deadline=None)
def test_wrap_equals_numpy_int8_and_uint8_casts(values):
    w = torch.tensor(values, dtype=torch.int64)
    arr = np.array(values, dtype=np.int64)
    assert narrow(w, -128, 127, torch.int8, OverflowPolicy.WRAP).tolist() == \
        arr.astype(np.int8).tolist()
    assert narrow(w, 0, 255, torch.uint8, "wrap").tolist() == arr.astype(np.uint8).tolist()


def test_wrap_matches_numpy_int8_arithmetic():
    # numpy computes in int8 with wraparound; narrow sees the exact sum / product.
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, 500, dtype=np.int64).astype(np.int8)
    b = rng.integers(-128, 128, 500, dtype=np.int64).astype(np.int8)
    exact_sum = torch.tensor(a.astype(np.int64) + b.astype(np.int64))
    exact_prod = torch.tensor(a.astype(np.int64) * b.astype(np.int64))
    assert narrow(exact_sum, -128, 127, torch.int8, "wrap").numpy().tolist() == (a + b).tolist()
    assert narrow(exact_prod, -128, 127, torch.int8, "wrap").numpy().tolist() == (a * b).tolist()


@given(wide_ints, st.integers(-128, 0), st.integers(0, 127))
@settings(max_examples=100, deadline=None)
def test_saturate_and_raise(values, lo, hi):
    w = torch.tensor(values, dtype=torch.int64)
    sat = narrow(w, lo, hi, torch.int8, OverflowPolicy.SATURATE).tolist()
    assert sat == [min(max(v, lo), hi) for v in values]
    bad = [i for i, v in enumerate(values) if not lo <= v <= hi]
    if bad:
        with pytest.raises(QuantOverflowError) as info:
            narrow(w, lo, hi, torch.int8, op="unit")
        err = info.value
        assert err.index == (bad[0],) and err.value == values[bad[0]]
        assert err.count == len(bad) and err.total == len(values)
        assert "unit" in str(err) and str(values[bad[0]]) in str(err)
    else:
        assert narrow(w, lo, hi, torch.int8).tolist() == values


def test_raise_names_multi_dimensional_index():
    w = torch.zeros(3, 4, dtype=torch.int32)
    w[1, 2] = 300
    w[2, 0] = -300
    with pytest.raises(QuantOverflowError) as info:
        narrow(w, -127, 127, torch.int8, op="quant.add")
    assert info.value.index == (1, 2) and info.value.value == 300
    assert "quant.add" in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="overflow policy 'clip' is not one for quant"):
        as_policy("clip")
    for float_only in ("inf", OverflowPolicy.NAN):     # integer codes hold neither
        with pytest.raises(ValueError, match="'raise', 'saturate', 'wrap'"):
            as_policy(float_only)
    with pytest.raises(TypeError, match="exact integer"):
        narrow(torch.tensor([1.5]), -128, 127, torch.int8)
    with pytest.raises(ValueError, match="int8 or uint8"):
        narrow(torch.tensor([1]), -128, 127, torch.int16)
    with pytest.raises(ValueError, match="does not fit"):
        narrow(torch.tensor([1]), -129, 127, torch.int8)
    with pytest.raises(ValueError):
        wrap_to_dtype(torch.tensor([1]), torch.int16)
    big = np.array([2 ** 31, -2 ** 31 - 5, 123], dtype=np.int64)     # accumulators wrap too
    assert wrap_to_dtype(torch.from_numpy(big), torch.int32).tolist() == \
        big.astype(np.int32).tolist()
    assert as_policy("SATURATE") is OverflowPolicy.SATURATE
