"""The device-matmul check, run on the CPU: torch's bf16/fp16 kernels against our emulation."""

from __future__ import annotations

import torch

from benchmarks import matmul_formats as mf


def test_cpu_bf16_and_fp16_matmuls_match_single_rounding_emulation():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(64, 128, generator=g), torch.randn(128, 32, generator=g)
    for fmt in ("bf16", "fp16"):
        r = mf.compare(a, b, fmt, "cpu")
        # FP32 accumulation then one rounding: at most one output ulp from the reference
        assert r["equal_share_rne"] > 0.99
        assert r["max_err_eps_rne"] <= 1.0


def test_input_rounding_modes():
    x = torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 1 + 2**-11 + 2**-20])
    # ties: RNE to even, RNA away from zero, truncation toward zero
    assert mf._round_inputs(x, "tf32", "rne").tolist() == [1.0, 1 + 2 * 2**-10, -1.0,
                                                            1 + 2**-10]
    assert mf._round_inputs(x, "tf32", "rna").tolist() == [1 + 2**-10, 1 + 2 * 2**-10,
                                                            -(1 + 2**-10), 1 + 2**-10]
    assert mf._round_inputs(x, "tf32", "trunc").tolist() == [1.0, 1 + 2**-10, -1.0, 1.0]
