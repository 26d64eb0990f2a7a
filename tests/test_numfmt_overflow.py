"""One overflow vocabulary for numfmt and quant."""

import pytest

import numfmt
import quant
from numfmt.overflow import OverflowPolicy, RangeOverflowError, as_policy


def test_names_and_members_are_interchangeable():
    for m in OverflowPolicy:
        assert as_policy(m.value.upper()) is m and m == m.value and str(m) == m.value


def test_restricted_choices_name_the_caller():
    with pytest.raises(ValueError, match="quant.add"):
        as_policy("inf", allowed=(OverflowPolicy.RAISE, OverflowPolicy.SATURATE), what="quant.add")
    with pytest.raises(ValueError, match="bogus"):
        as_policy("bogus")


def test_one_enum_and_one_error_across_packages():
    assert quant.OverflowPolicy is numfmt.OverflowPolicy
    assert quant.QuantOverflowError is numfmt.RangeOverflowError
    assert issubclass(RangeOverflowError, OverflowError)


def test_error_carries_where_and_what():
    e = RangeOverflowError("op", (1, 2), 300, -128, 127, count=3, total=10)
    assert (e.index, e.value, e.qmin, e.qmax, e.count, e.total) == ((1, 2), 300, -128, 127, 3, 10)
    assert "300" in str(e) and "(1, 2)" in str(e)


def test_round_to_raise_is_the_shared_error():
    with pytest.raises(RangeOverflowError):
        numfmt.round_to(1e6, "fp16", overflow="raise")
    with pytest.raises(RangeOverflowError):
        numfmt.round_to(1e6, "fp16", overflow=OverflowPolicy.RAISE)
