"""quant.exact_matmul: int_matmul exact on every path (fp32 blocks, int32, blockwise int64,
int64 operands) against int64 / Python-int references, and its checks."""

import pytest
import torch

import quant
from quant import ScaledInt8
from quant.exact_matmul import contraction_size


def test_matmul_beyond_int32_uses_blockwise_int64_exactly():
    k = 70_000                       # 70_000 * 255 * 127 > 2**31 - 1
    qa = torch.full((2, k), 255, dtype=torch.uint8)
    qb = torch.full((k, 2), 127, dtype=torch.int8)
    a = ScaledInt8(qa, scale=1.0)
    b = ScaledInt8(qb, scale=1.0, qmin=-127)
    proof = quant.matmul_accumulator_proof(a, b)
    assert not proof.fits and proof.max_k == (2**31 - 1) // (255 * 127)
    acc, used = quant.int_matmul(qa.to(torch.int64), qb.to(torch.int64), (0, 255), (-127, 127))
    assert acc.dtype == torch.int64 and bool((acc == 255 * 127 * k).all())
    assert used.reason == proof.reason
    small, p32 = quant.int_matmul(qa[:, :784].long(), qb[:784].long(), (0, 255), (-128, 127))
    assert small.dtype == torch.int32 and p32.fits_int32
    with pytest.raises(ValueError, match="declared range"):
        quant.int_matmul(qa.long(), qb.long(), (0, 100), (-127, 127))
    with pytest.raises(TypeError, match="integer"):
        quant.int_matmul(qa.float(), qb.long(), (0, 255), (-127, 127))


@pytest.mark.parametrize("a_range,b_range,k", [
    ((0, 255), (-128, 127), 784),          # pixels x int8 weights: one fp32 block (514 terms)
    ((0, 255), (-128, 127), 5000),         # several blocks, still int32
    ((-256, 256), (-256, 256), 300),       # the largest 8-bit magnitudes (256 = 2**8)
    ((-257, 0), (0, 255), 300),            # 9 significant bits: int32 path
    ((0, 255), (-127, 127), 70_000),       # beyond int32: int64 sum of blocks
    ((0, 1), (0, 1), 0),                   # empty contraction
])
def test_int_matmul_is_exact_on_every_path(a_range, b_range, k):
    g = torch.Generator().manual_seed(k)
    lo_a, hi_a = a_range
    lo_b, hi_b = b_range
    a = torch.randint(lo_a, hi_a + 1, (3, 7, k), generator=g)
    b = torch.randint(lo_b, hi_b + 1, (k, 5), generator=g)
    if k:
        a[0, 0] = hi_a if abs(hi_a) >= abs(lo_a) else lo_a      # the extremes, all at once
        b[:, 0] = hi_b if abs(hi_b) >= abs(lo_b) else lo_b
    exact = torch.einsum("bik,kj->bij", a, b)                  # int64 reference
    got, proof = quant.int_matmul(a, b, a_range, b_range)
    assert torch.equal(got.to(torch.int64), exact)
    assert got.dtype == (torch.int32 if proof.fits else torch.int64)
    v, _ = quant.int_matmul(a[0, 0], b[:, 1], a_range, b_range)   # 1-d operands
    assert int(v) == int((a[0, 0] * b[:, 1]).sum())


def test_int_matmul_stays_exact_under_reduced_fp32_matmul_precision():
    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 256, (64, 2000), generator=g, dtype=torch.uint8)
    b = torch.randint(-128, 128, (2000, 9), generator=g, dtype=torch.int8)
    old = torch.get_float32_matmul_precision()
    try:
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            got, _ = quant.int_matmul(a, b, (0, 255), (-128, 127))
            assert torch.equal(got.to(torch.int64), a.long() @ b.long()), precision
    finally:
        torch.set_float32_matmul_precision(old)


def test_int_matmul_beyond_int32_operands_and_products_is_exact():
    """Operands or single products outside int32 go through int64 (were wrapped before)."""
    r, _ = quant.int_matmul(torch.tensor([[65536]]), torch.tensor([[65536]]), (0, 65536),
                            (0, 65536))
    assert int(r) == 65536 * 65536
    r, _ = quant.int_matmul(torch.tensor([[2**40]]), torch.tensor([[3]]), (0, 2**40), (0, 3))
    assert int(r) == 3 * 2**40
    g = torch.Generator().manual_seed(5)
    a = torch.randint(-2**16, 2**16, (4, 900), generator=g)
    b = torch.randint(-2**16, 2**16, (900, 3), generator=g)
    r, _ = quant.int_matmul(a, b, (-2**16, 2**16), (-2**16, 2**16))
    exact = [[sum(int(x) * int(y) for x, y in zip(row, col)) for col in b.T.tolist()]
             for row in a.tolist()]
    assert r.tolist() == exact


def test_contraction_size_checks_shapes():
    assert contraction_size((2, 3, 4), (4, 5), "op") == 4
    assert contraction_size((4,), (4,), "op") == 4
    with pytest.raises(ValueError, match="op: contraction sizes differ"):
        contraction_size((2, 3), (4, 5), "op")
    with pytest.raises(ValueError, match=r"op: a must be"):
        contraction_size((), (4,), "op")

