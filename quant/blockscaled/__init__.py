"""quant.blockscaled: block-scaled encodings (OCP MX, NVFP4) at tensor speed, with exact arithmetic.

* `BlockScaled` (encoding): encode / decode / packed storage, bit-identical to the exact
  reference `numfmt.block_codec` (chunked float32 pipelines for MX and NVFP4).
* `fast` / `decoding`: the chunked float32 encode and decode pipelines behind it.
* `pack_codes` / `unpack_codes` (packing): 4-bit codes two per byte, 6-bit four per 3 bytes.
* `block_matmul_exact`, `block_dot_exact`, `block_accumulator_bound`,
  `fp32_accumulation_error` (arithmetic): the exact product of two block-scaled operands, the
  accumulator widths it needs, and what fp32 accumulation loses against it.
"""

from .arithmetic import (BlockAccumulatorProof, block_accumulator_bound, block_dot_exact,
                         block_matmul_exact, fp32_accumulation_error)
from .encoding import BlockScaled
from .packing import pack_codes, packed_nbytes, unpack_codes

__all__ = ["BlockScaled", "pack_codes", "unpack_codes", "packed_nbytes", "block_matmul_exact",
           "block_dot_exact", "block_accumulator_bound", "BlockAccumulatorProof",
           "fp32_accumulation_error"]
