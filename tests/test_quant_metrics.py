"""quant.metrics on hand-checkable values."""

import math

import numpy as np
import pytest
import torch

from quant import dynamic_range_db, max_rel_error, rms_rel_error, sqnr_db
from quant.metrics import relative_errors


def test_relative_errors_and_their_zero_convention():
    ref = torch.tensor([1.0, -2.0, 0.0, 0.0, 4.0])
    approx = torch.tensor([1.5, -2.0, 0.0, 1e-9, 3.0])
    rel = relative_errors(ref, approx)
    assert rel.tolist()[:3] == [0.5, 0.0, 0.0] and rel[3] == math.inf and rel[4] == 0.25
    assert max_rel_error(ref[[0, 1, 4]], approx[[0, 1, 4]]) == 0.5
    assert rms_rel_error(np.array([1.0, 2.0]), np.array([1.5, 2.0])) == \
        pytest.approx(math.sqrt(0.125))


def test_sqnr_and_dynamic_range():
    ref = torch.tensor([3.0, 4.0])
    assert sqnr_db(ref, ref + torch.tensor([0.3, 0.4])) == pytest.approx(20.0)
    assert sqnr_db(ref, ref) == math.inf
    assert dynamic_range_db(torch.tensor([0.0, -0.001, 10.0])) == pytest.approx(80.0)
    assert dynamic_range_db(torch.zeros(3)) == 0.0


def test_empty_and_bad_input():
    e = torch.empty(0)
    assert max_rel_error(e, e) == 0.0 and rms_rel_error(e, e) == 0.0 and sqnr_db(e, e) == math.inf
    with pytest.raises(ValueError, match="shape"):
        max_rel_error(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        sqnr_db(torch.tensor([math.nan]), torch.tensor([1.0]))
