"""`BlockScaled`: a tensor held in a block-scaled format (MX, NVFP4), packed, beside ScaledInt8.

The codes are those of the exact reference `numfmt.block_codec.block_encode` (bit for bit:
float32 / float16 / bf16 CPU inputs with nearest-even elements and saturation take the chunked
float32 pipelines of `quant.blockscaled.fast`, everything else the reference itself). Storage is packed: 4-bit
elements two per byte, 6-bit elements four per three bytes, one byte per scale, and NVFP4's
FP32 tensor scale (`quant.blockscaled.packing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from numfmt.block_checks import check_axis, check_input, check_overflow, check_rule
from numfmt.block_codec import BlockEncoded, block_decode, block_encode
from numfmt.blocks import BlockFormat, get_block_format

from ..metrics import DecodeErrorMetrics
from .decoding import decode_float32
from .fast import encode_mx_float32, encode_nvfp4_float32
from .packing import pack_codes, packed_nbytes, unpack_codes

__all__ = ["BlockScaled"]


@dataclass(frozen=True)
class BlockScaled(DecodeErrorMetrics):
    """A tensor encoded in a block format, with packed element storage.

    The fields are those of `numfmt.block_codec.BlockEncoded` (format, rule, shape, axis,
    dtype, scale codes, tensor scale), with the element codes held packed: ``packed`` is
    uint8, the codes of ``(*other, num_blocks, block_size)`` in row-major order at the
    element's width (`quant.blockscaled.packing`); `element_codes` unpacks them. The error
    metrics (``max_rel_error``, ``rms_rel_error``, ``sqnr_db``) are those of `ScaledInt8`.
    """

    format: BlockFormat
    rule: str
    shape: tuple[int, ...]
    axis: int
    dtype: Any
    scale_codes: Any
    packed: Any
    tensor_scale: float | None

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def encode(cls, x: Any, fmt: str | BlockFormat, *, rule: str | None = None,
               axis: int = -1, rounding: str = "nearest_even",
               overflow: str = "saturate", seed: int | None = None,
               generator: Any = None) -> "BlockScaled":
        """Encode a tensor.

        Parameters
        ----------
        x : torch.Tensor
            float16, bfloat16, float32 or float64, at least one element. Not modified.
        fmt : str or BlockFormat
            A block format name (``"mxfp8_e4m3"``, ``"mxfp4_e2m1"``, ``"nvfp4"``, ...).
        rule : str, optional
            A scale rule of the format; the format's standard rule if omitted.
        axis : int
            The blocked axis (for a weight ``(out, in)`` used as ``x @ w.T``: -1).
        rounding, overflow, seed, generator
            As `numfmt.block_codec.block_encode` (nearest-even and saturation take the fast
            float32 passes; other choices the reference).

        Returns
        -------
        BlockScaled

        Raises
        ------
        TypeError, ValueError, RangeOverflowError
            As `numfmt.block_codec.block_encode` (checked before any work).

        Examples
        --------
        >>> import torch
        >>> b = BlockScaled.encode(torch.ones(2, 64), "mxfp4_e2m1")
        >>> b.nbytes, b.decode().sum().item()
        (68, 128.0)
        """
        import torch

        f = get_block_format(fmt)
        t, _ = check_input(x)                  # the same named errors as the reference, first
        ax, rule = check_axis(axis, t.dim()), check_rule(f, rule)
        fast = (isinstance(x, torch.Tensor) and x.device.type == "cpu"
                and x.dtype in (torch.float16, torch.bfloat16, torch.float32)
                and check_overflow(overflow) == "saturate" and rounding == "nearest_even"
                and seed is None and generator is None)
        if fast:
            s_t = None
            if f.is_mx:
                scodes, packed = encode_mx_float32(x, f, rule, ax)
            else:
                scodes, packed, s_t = encode_nvfp4_float32(x, f, ax)
            return cls(f, rule, tuple(x.shape), ax, x.dtype, scodes, packed, s_t)
        enc = block_encode(x, f, rule=rule, axis=axis, rounding=rounding,
                           overflow=overflow, seed=seed, generator=generator)
        bits = f.element_format.bits
        # the codes are this call's own fresh tensors: 8-bit codes need no packing copy
        packed = enc.element_codes.reshape(-1) if bits == 8 else pack_codes(enc.element_codes,
                                                                             bits)
        return cls(f, enc.rule, enc.shape, enc.axis, enc.dtype, enc.scale_codes, packed,
                   enc.tensor_scale)

    @classmethod
    def from_encoded(cls, enc: BlockEncoded) -> "BlockScaled":
        """Pack a `numfmt.block_codec.BlockEncoded` (its tensors are not aliased)."""
        if not isinstance(enc, BlockEncoded):
            raise TypeError(f"from_encoded takes a BlockEncoded, not {type(enc).__name__}")
        bits = enc.format.element_format.bits
        return cls(enc.format, enc.rule, enc.shape, enc.axis, enc.dtype,
                   enc.scale_codes.clone(), pack_codes(enc.element_codes, bits),
                   enc.tensor_scale)

    # ---- views -----------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        """Blocks along the axis."""
        return int(self.scale_codes.shape[-1])

    @property
    def element_codes(self):
        """The unpacked element codes, uint8 ``(*other, num_blocks, block_size)``."""
        shape = (*self.scale_codes.shape, self.format.block_size)
        n = 1
        for s in shape:
            n *= s
        return unpack_codes(self.packed, self.format.element_format.bits, n).view(shape)

    def to_encoded(self) -> BlockEncoded:
        """The unpacked `numfmt.block_codec.BlockEncoded` (for `block_decode` and friends)."""
        return BlockEncoded(self.format, self.rule, self.shape, self.axis, self.dtype, "torch",
                            self.scale_codes, self.element_codes, self.tensor_scale)

    @property
    def nbytes(self) -> int:
        """Bytes of storage: packed elements, one byte per block scale, 4 for a tensor scale.

        Equals ``ceil(elements * bits / 8)`` of the padded blocks plus the scales (MXFP4 on
        ``(2, 64)``: 64 + 4 = 68 bytes).
        """
        n = self.scale_codes.numel() * self.format.block_size
        return (packed_nbytes(n, self.format.element_format.bits) + self.scale_codes.numel()
                + (4 if self.tensor_scale is not None else 0))

    def decode(self, dtype: Any = None):
        """The values, in the original shape.

        Parameters
        ----------
        dtype : torch.dtype, optional
            Default float64 for a float64 input, float32 otherwise; each value is exact in
            float64 and rounded once into ``dtype``.

        Returns
        -------
        torch.Tensor

        Notes
        -----
        A float32 result is computed in float32: ``element * block scale`` is exact there and
        the one product that can round (by the E8M0 power of two into float32's subnormals, or
        by NVFP4's tensor scale) is correctly rounded, the float64 reference rounded once.
        """
        import torch

        out = dtype or (torch.float64 if self.dtype == torch.float64 else torch.float32)
        if out != torch.float32 or self.scale_codes.device.type != "cpu":
            return block_decode(self.to_encoded(), out)
        v = decode_float32(self.format, self.packed, self.scale_codes, self.tensor_scale)
        v = v.view(*self.scale_codes.shape, self.format.block_size)
        v = v.reshape(*v.shape[:-2], -1)[..., :self.shape[self.axis]]
        return v.movedim(-1, self.axis).contiguous()

