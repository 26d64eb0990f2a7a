"""The integer softmax: exact table, proven error bound, argmax guarantee, bad input.

References are independent of the code under test: the table against mpmath at 200 bits,
probabilities against a float64 softmax (torch) and an mpmath softmax, the argmax against the
logits themselves.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quant.integer.softmax import (IntegerSoftmax, integer_softmax, make_integer_softmax,
                                   softmax_out_dtype)

OUT_TYPES = ("uint8", "uint16")


def _ref_softmax(codes: torch.Tensor, scale: float) -> torch.Tensor:
    z = codes.to(torch.float64) * scale
    return torch.softmax(z, dim=-1)


def _codes(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int8)


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.0358, 0.001, 0.5, 1 / 3, 7.0])
def test_table_is_correctly_rounded_exp(scale: float) -> None:
    sm = make_integer_softmax(scale, 10)
    f = sm.frac_bits
    with mpmath.workprec(200):
        s = mpmath.mpf(scale)  # the float scale, exactly
        want = [int(mpmath.floor(mpmath.ldexp(mpmath.exp(-d * s), f) + mpmath.mpf(0.5)))
                for d in range(256)]
    assert list(sm.table) == want
    assert sm.table[0] == 2 ** f
    assert all(a >= b for a, b in zip(sm.table, sm.table[1:]))


# -- the error bound ---------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(n=st.integers(2, 24), batch=st.integers(1, 6),
       scale=st.floats(1e-3, 4.0, allow_nan=False), out=st.sampled_from(OUT_TYPES),
       data=st.data())
def test_error_bound_against_float64(n: int, batch: int, scale: float, out: str, data) -> None:
    rows = data.draw(st.lists(st.lists(st.integers(-128, 127), min_size=n, max_size=n),
                              min_size=batch, max_size=batch))
    codes = _codes(rows)
    sm = make_integer_softmax(scale, n, out)
    p = sm(codes)
    assert p.dtype == softmax_out_dtype(out)[0] and p.shape == codes.shape
    err_steps = (p.to(torch.float64) - sm.prob_max * _ref_softmax(codes, scale)).abs().max()
    # The proven bound (float64 reference error is ~1e-16 relative, far below the slack).
    assert err_steps <= sm.error_bound_steps + 1e-9
    assert err_steps <= 2  # the requirement: at most 2 output steps


def test_bound_value_matches_its_formula() -> None:
    sm8, sm16 = make_integer_softmax(0.1, 10, "uint8"), make_integer_softmax(0.1, 10, "uint16")
    assert sm8.error_bound_steps == pytest.approx(0.5 + 2**-20 + 255 * 9 / 2**23, rel=1e-15)
    assert sm16.error_bound_steps == pytest.approx(0.5 + 2**-20 + 65535 * 9 / 2**23, rel=1e-15)
    assert sm8.error_bound_steps < 0.501 and sm16.error_bound_steps < 0.571
    assert sm8.error_bound == pytest.approx(sm8.error_bound_steps / 255)


@pytest.mark.parametrize("out", OUT_TYPES)
def test_against_mpmath_on_adversarial_rows(out: str) -> None:
    scale = 0.0358
    rows = [[127] + [-128] * 9, [0] * 10, [127, 126] + [-128] * 8,
            [5, 4, 3, 2, 1, 0, -1, -2, -3, -4],
            [127, 125, 125, 125, 125, 125, 125, 125, 125, 125], list(range(-128, 127, 26))]
    sm = make_integer_softmax(scale, 10, out)
    p = sm(_codes(rows))
    with mpmath.workdps(40):
        for i, row in enumerate(rows):
            ex = [mpmath.exp(mpmath.mpf(v) * mpmath.mpf(scale)) for v in row]
            total = mpmath.fsum(ex)
            for j in range(10):
                err = abs(mpmath.mpf(int(p[i, j])) - sm.prob_max * ex[j] / total)
                assert err <= sm.error_bound_steps


def test_two_classes_exhaustive_against_sigmoid() -> None:
    # Every int8 pair reduces to a gap d in 0..255: check all of them against the sigmoid.
    scale = 0.05
    sm = make_integer_softmax(scale, 2)
    d = torch.arange(256)
    codes = torch.stack([torch.full((256,), 127), 127 - d], 1).to(torch.int8)
    p = sm(codes).to(torch.float64)
    top = 1 / (1 + torch.exp(-(d.to(torch.float64) * scale)))
    assert (p[:, 0] - 255 * top).abs().max() <= sm.error_bound_steps
    assert (p[:, 1] - 255 * (1 - top)).abs().max() <= sm.error_bound_steps


# -- argmax ------------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(n=st.integers(2, 16), scale=st.floats(0.0194, 3.0), out=st.sampled_from(OUT_TYPES),
       gap=st.integers(2, 255), data=st.data())
def test_argmax_kept_when_top_two_differ_by_more_than_one_step(n, scale, out, gap, data) -> None:
    sm = make_integer_softmax(scale, n, out)
    assume(sm.argmax_safe)
    top = data.draw(st.integers(-128 + gap, 127))
    others = data.draw(st.lists(st.integers(-128, top - gap), min_size=n - 1, max_size=n - 1))
    # Make the runner-up exactly `gap` below: the hardest case for this gap.
    others[0] = top - gap
    pos = data.draw(st.integers(0, n - 1))
    row = others[:pos] + [top] + others[pos:]
    p = sm(_codes([row]))
    assert int(p.to(torch.int32).argmax()) == pos
    assert int(torch.argmax(_ref_softmax(_codes([row]), scale))) == pos


def test_argmax_safe_flag_is_needed_for_tiny_steps() -> None:
    scale = 0.001  # far below ~n / (2 * 255)
    sm8 = make_integer_softmax(scale, 10, "uint8")
    assert not sm8.argmax_safe
    # The top logit (index 4) is two codes above the rest, yet it shares its output code
    # with indices 0..3, so argmax (first index) says 0.
    row = _codes([[-2] * 4 + [0] + [-2] * 4 + [-100]])
    p = sm8(row)
    assert int(p[0, 4]) == int(p[0, 0])
    assert int(p.argmax()) == 0
    sm16 = make_integer_softmax(scale, 10, "uint16")
    assert sm16.argmax_safe
    assert int(sm16(row).to(torch.int32).argmax()) == 4


def test_argmax_safe_for_the_default_pipeline_step() -> None:
    assert make_integer_softmax(math.log(4 * 9 * 255) / 255, 10, "uint8").argmax_safe


# -- shapes, dtypes, purity --------------------------------------------------------------------
def test_batch_dims_empty_and_no_mutation() -> None:
    sm = make_integer_softmax(0.1, 4)
    x = torch.randint(-128, 128, (3, 5, 4), generator=torch.Generator().manual_seed(0),
                      dtype=torch.int8)
    before = x.clone()
    p = sm(x)
    assert p.shape == (3, 5, 4) and p.dtype == torch.uint8
    assert torch.equal(x, before)
    assert torch.equal(p.reshape(-1, 4), sm(x.reshape(-1, 4)))
    assert sm(torch.zeros((0, 4), dtype=torch.int8)).shape == (0, 4)
    row_sums = p.to(torch.int32).sum(-1)
    assert ((row_sums - 255).abs() <= 4 * sm.error_bound_steps).all()


def test_shift_invariance() -> None:
    # softmax(q + c) == softmax(q): only the gaps to the row max matter, bit for bit.
    sm = make_integer_softmax(0.2, 6)
    q = torch.tensor([[10, 3, -7, 0, 9, 10]], dtype=torch.int8)
    assert torch.equal(sm(q), sm(q - 100))


def test_uniform_row_is_one_over_n() -> None:
    for n in (2, 3, 10, 17):
        p = make_integer_softmax(0.5, n)(torch.full((1, n), -7, dtype=torch.int8))
        assert (p.to(torch.int32) == round(255 / n)).all()


def test_functional_form_matches_object() -> None:
    q = torch.tensor([[1, 2, 3], [-128, 127, 0]], dtype=torch.int8)
    assert torch.equal(integer_softmax(q, 0.3), make_integer_softmax(0.3, 3)(q))
    assert integer_softmax(q, 0.3, "uint16").dtype == torch.uint16
    assert isinstance(make_integer_softmax(0.3, 3), IntegerSoftmax)


# -- bad input ---------------------------------------------------------------------------------
def test_float_logits_are_rejected_with_a_hint() -> None:
    sm = make_integer_softmax(0.1, 3)
    with pytest.raises(TypeError, match="int8 logit codes.*float32.*quantize"):
        sm(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="int8 logit codes, got torch.int32"):
        sm(torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        sm([[1, 2, 3]])


def test_wrong_class_count_is_rejected() -> None:
    sm = make_integer_softmax(0.1, 3)
    with pytest.raises(ValueError, match=r"3 classes.*\(\.\.\., 3\).*\(2, 4\)"):
        sm(torch.zeros(2, 4, dtype=torch.int8))
    with pytest.raises(ValueError, match="shape"):
        sm(torch.tensor(1, dtype=torch.int8))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="logit_scale must be finite and > 0"):
        make_integer_softmax(scale, 3)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="logit_scale must be a real number"):
        make_integer_softmax("0.1", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        make_integer_softmax(0.1, 0)
    with pytest.raises(ValueError, match="'uint8' or 'uint16'"):
        make_integer_softmax(0.1, 3, "int8")
    with pytest.raises(ValueError, match="'uint8' or 'uint16'"):
        make_integer_softmax(0.1, 3, torch.float32)
    assert softmax_out_dtype(torch.uint16) == (torch.uint16, 65535)
    assert softmax_out_dtype("torch.uint8") == (torch.uint8, 255)
