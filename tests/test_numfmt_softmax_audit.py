"""The backend exp audit (numfmt.audit) on small formats and its input plan for fp32."""

from __future__ import annotations


import numpy as np
import pytest

import numfmt
from numfmt.audit import audit_exp, audit_inputs, correct_exp


def test_correct_exp_reference_agrees_with_exact_rounding():
    f = numfmt.get("bf16")
    x = f.finite_values()[::97]
    want = np.array([numfmt.exp_rounded(v, f) for v in x])
    got = correct_exp(f, x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


@pytest.mark.parametrize("name,backend", [("fp16", "numpy"), ("bf16", "ml_dtypes"),
                                          ("fp8_e4m3fn", "ml_dtypes"), ("fp16", "torch")])
def test_audit_exhaustive_small_formats(name, backend):
    a = audit_exp(name, backend)
    f = numfmt.get(name)
    assert a.exhaustive and a.tested == f.finite_values().size
    # The measured bounds are what the backend does: re-measure directly
    x = f.finite_values()
    with np.errstate(all="ignore"):
        if backend == "torch":
            import torch
            got = torch.exp(torch.from_numpy(x).to(f.torch_dtype)).double().numpy()
        else:
            got = np.exp(x.astype(f.numpy_dtype)).astype(np.float64)
    assert a.max_arg == x[np.isfinite(got)].max()
    assert a.min_arg == x[got != 0].min()
    assert 0 <= a.mismatches < a.tested // 100


def test_audit_reports_missing_backends_as_none():
    assert audit_exp("tf32", "torch") is None
    assert audit_exp("bf16", "numpy") is None
    with pytest.raises(ValueError, match="unknown backend"):
        audit_exp("fp16", "jax")


def test_fp32_audit_inputs_cover_the_bounds():
    x, exhaustive = audit_inputs(numfmt.get("fp32"))
    b = numfmt.exp_bounds("fp32")
    assert not exhaustive
    for bound in (b.max_arg, b.min_arg, b.min_normal_arg):
        assert bound in x
        assert float(np.nextafter(np.float32(bound), np.float32(np.inf))) in x
