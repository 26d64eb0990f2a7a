"""What a trained softmax regression computes under one number format or int8 encoding.

The model of computation for a float format F (``fp64`` ... ``fp4_e2m1fn``):

* inputs (pixels k/255) and the weights and bias are rounded to F (`numfmt.round_to`, nearest
  even, the format's own overflow rule);
* logits: products of F values accumulated in FP32 (FP64 for fp64) with the bias, the sum
  rounded once to F -- what a tensor core does (F x F products are exact in FP32 for every
  format narrower than FP32). TF32 is a matmul-input format only, so its logits and softmax
  are FP32;
* softmax: every operation rounded to F (`numfmt.softmax_in_format`), the exps summed under
  numfmt's accumulation model (``accumulation``, default ``"torch"``: as torch sums -- the half
  types, and the formats torch has no kernel for, accumulate in float32 and round once;
  ``"sequential"`` rounds every partial sum). *Naive* softmax is exp(z) / sum exp(z); *stable*
  softmax subtracts the row max first (that subtraction rounded too). A softmax *fails* for a
  sample when an operation rounds past F's largest value (to inf or NaN, or, for formats with
  neither -- FP6, FP4 -- to a value clamped at max, which is counted too), or a probability
  comes out NaN (0/0 when every exp underflows).

For the int8 encodings (`ENCODINGS`, quant's one table `quant.encodings`), weights and inputs
are encoded by `quant.get_encoding(name)`: ``scaled_int8_per_tensor`` (W: symmetric int8, one
min-max scale), ``scaled_int8_per_channel`` (W: one scale per class row), both with the inputs
as asymmetric uint8 over the static range [0, 1] (scale 1/255 and zero point 0: pixel codes are
exact, and no image's codes depend on the rest of its batch); ``log_int8`` (W *and* the inputs
log-encoded, `quant.LogInt8`, 3 fractional bits); ``log_int8_weights`` (W log-encoded, the
inputs the uint8 pixels, k/255 exactly). The bias stays FP32. Logits are the decoded values'
products accumulated exactly (float64, as an int32 accumulator times the scales would be),
rounded to FP32; the softmax is FP32. ``integer_only`` runs `quant.quantize_softmax_regression`
end to end in integers (uint8 pixels, int8 weights, int32 accumulators and bias, int8 logits,
integer softmax to uint8 probabilities); its logits are reported dequantized and relative to
the row max, and it has no naive softmax.

For the block-scaled formats (`BLOCK_TARGETS`, `numfmt.blocks`: MXFP8/6/4, MXINT8, NVFP4), W
(10, 784) is encoded by `quant.blockscaled.BlockScaled` with the blocks along the input-feature
axis K (each class row is cut into blocks of 32, or 16 for NVFP4, consecutive pixel weights; a
row of 784 is 24 full MX blocks and one of 16, padded with zeros as `numfmt.block_codec` does)
and decoded exactly. The row named by the format alone keeps the inputs the exact pixels k/255;
the row ``<format>_w_x`` block-rounds the pixel features too (`numfmt.block_codec.block_round`
of the float64 k/255 along K: one rounding each, blocks inside each image's row). NVFP4's FP32
tensor scale for the inputs is the static one of the pixel range [0, 1], S = fp32(1 / (448 *
6)) (the features are encoded with one appended block of ones, then dropped), so that no image's
values depend on the rest of its batch, as for the int8 encodings. The bias stays FP32; logits
are the decoded values' products summed in float64 plus the bias, rounded to FP32, and the
softmax is FP32, as for the int8 encodings. The bytes are `BlockScaled.nbytes` (packed element
codes of the padded blocks, one byte per block scale, 4 for NVFP4's tensor scale) plus the FP32
bias.

Images are uint8 pixels (N, 28, 28) or float features in [0, 1] (pixels / 255), as torch
tensors or numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numfmt
import torch
from numfmt.block_codec import block_round
from numfmt.blocks import block_format_names, get_block_format
from numfmt.informat import round_with_overflow
from numfmt.softmax import check_accumulation
from quant.blockscaled import BlockScaled
from quant.encodings import encoding_names, get_encoding

from models.data import images_to_float
from models.inputs import as_images, as_labels
from models.softmax_regression import SoftmaxRegression

__all__ = ["ENCODINGS", "BLOCK_TARGETS", "INPUTS_SUFFIX", "FormatOutputs", "run_in_format",
           "weight_bytes", "weight_bits", "encoding_name", "block_target", "check_model"]

# quant's one table of named encodings (`quant.encodings`): one name, one meaning everywhere
ENCODINGS: tuple[str, ...] = encoding_names()

# A block-format target with this suffix block-rounds the inputs as well as the weights.
INPUTS_SUFFIX = "_w_x"

# Every block format of `numfmt.blocks`, weights only, then weights and inputs, format by format.
BLOCK_TARGETS: tuple[str, ...] = tuple(n + s for n in block_format_names()
                                       for s in ("", INPUTS_SUFFIX))


@dataclass(frozen=True)
class FormatOutputs:
    """What the model computes under one format (float64 tensors of the format's values).

    Attributes
    ----------
    name : str
        The format or encoding.
    logits, probs : Tensor
        (N, C); ``probs`` from the stable softmax.
    naive_failed, stable_failed : Tensor of bool
        (N,) per sample; ``naive_failed`` is None where there is no naive softmax.
    cross_entropy : Tensor or None
        (N,) the stable log-softmax loss computed in ``softmax_format`` (None without labels).
    softmax_format : str
        The format the softmax ran in.
    weight_bytes : int
    """

    name: str
    logits: torch.Tensor
    probs: torch.Tensor
    naive_failed: torch.Tensor | None
    stable_failed: torch.Tensor
    cross_entropy: torch.Tensor | None
    softmax_format: str
    weight_bytes: int

    @property
    def predictions(self) -> torch.Tensor:
        """Argmax of the logits (first index on ties)."""
        return self.logits.argmax(dim=1)


def weight_bytes(model: SoftmaxRegression, fmt: Any) -> int:
    """Bytes to store W and b in a float format: ceil(elements * bits / 8) (FP6/FP4 packed);
    TF32 is held in FP32 (4 bytes)."""
    f = numfmt.get(numfmt.HELD_IN.get(numfmt.get(fmt).name, fmt))
    n = sum(p.numel() for p in model.parameters())
    return math.ceil(n * f.bits / 8)


def check_model(model: Any) -> None:
    """Raise TypeError unless ``model`` is a `SoftmaxRegression`."""
    if not isinstance(model, SoftmaxRegression):
        raise TypeError(f"evaluate needs a SoftmaxRegression, not {type(model).__name__}")


def encoding_name(fmt: Any) -> str | None:
    """The `ENCODINGS` entry ``fmt`` names (`quant.get_encoding`: case and spacing ignored),
    else None."""
    if isinstance(fmt, str):
        try:
            return get_encoding(fmt).name
        except ValueError:
            return None
    return None


def block_target(fmt: Any) -> tuple[str, bool] | None:
    """The block format a target names and whether its inputs are block-rounded too, else None.

    Parameters
    ----------
    fmt : Any
        A name of `numfmt.blocks.block_format_names()` (weights in the format), or that name
        with the suffix ``"_w_x"`` (weights and inputs); case and surrounding spaces ignored.

    Returns
    -------
    tuple of (str, bool) or None
        The canonical block format name and ``True`` for a ``_w_x`` target; None for anything
        that is not a block-format target.

    Examples
    --------
    >>> block_target(" MXFP4_E2M1_w_x ")
    ('mxfp4_e2m1', True)
    """
    if not isinstance(fmt, str):
        return None
    s = fmt.strip().lower()
    inputs = s.endswith(INPUTS_SUFFIX)
    base = s[:-len(INPUTS_SUFFIX)] if inputs else s
    return (base, inputs) if base in block_format_names() else None


def _round(t: torch.Tensor, f: numfmt.Format) -> torch.Tensor:
    """float64 tensor -> float64 tensor of ``f`` values (identity for fp64)."""
    return round_with_overflow(t, f)[0]


def _params64(model: SoftmaxRegression) -> tuple[torch.Tensor, torch.Tensor]:
    check_model(model)
    w = model.linear.weight.detach().to("cpu", torch.float64)
    b = model.linear.bias.detach().to("cpu", torch.float64)
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise ValueError("the model's weights contain NaN or infinity (did training diverge?)")
    return w, b


def _inputs_in(images: torch.Tensor, f: numfmt.Format, dtype: torch.dtype) -> torch.Tensor:
    """Inputs as ``dtype`` values of ``f``: uint8 pixels through a 256-entry table of k/255
    correctly rounded (exact and fast), float features rounded directly."""
    if images.dtype == torch.uint8:
        table = _round(torch.arange(256, dtype=torch.float64) / 255.0, f).to(dtype)
        idx = images.reshape(-1).to(torch.int32)
        return table.index_select(0, idx).reshape(images.shape[0], -1)
    return _round(images_to_float(images, torch.float64), f).to(dtype)


def _outputs(name: str, z: torch.Tensor, softmax_format: str, nbytes: int,
             labels: torch.Tensor, accumulation: str) -> FormatOutputs:
    """The softmaxes and the loss of logits ``z`` in ``softmax_format`` (numfmt.informat)."""
    p, stable_failed = numfmt.softmax_in_format(z, softmax_format, accumulation=accumulation)
    _, naive_failed = numfmt.softmax_in_format(z, softmax_format, stable=False,
                                               accumulation=accumulation)
    ce = numfmt.cross_entropy_in_format(z, labels, softmax_format, accumulation=accumulation)
    return FormatOutputs(name, z, p, naive_failed, stable_failed, ce, softmax_format, nbytes)


def _float_outputs(model: SoftmaxRegression, images: torch.Tensor, f: numfmt.Format,
                   labels: torch.Tensor, accumulation: str) -> FormatOutputs:
    w, b = _params64(model)
    wf, bf = _round(w, f), _round(b, f)
    held = numfmt.get(numfmt.HELD_IN.get(f.name, f.name))
    if f.name == "fp64":
        z = torch.mm(wf, _inputs_in(images, f, torch.float64).T).T + bf
    else:
        # F x F products are exact in FP32 and accumulate there; one rounding into F at the end.
        x32 = _inputs_in(images, f, torch.float32)
        z = _round((torch.mm(wf.float(), x32.T).T + bf.float()).double(), held)
    return _outputs(f.name, z, held.name, weight_bytes(model, f), labels, accumulation)


def _decoded_outputs(name: str, wd: torch.Tensor, xd: torch.Tensor, b: torch.Tensor,
                     nbytes: int, labels: torch.Tensor, accumulation: str) -> FormatOutputs:
    """Logits of decoded float64 weights ``wd`` and inputs ``xd`` with the FP32 bias, rounded
    to FP32, and the FP32 softmax."""
    # Products of decoded values summed in float64: what an integer (or block) accumulator
    # times the scales gives (exact up to float64 rounding), then dequantized to FP32.
    z = _round(torch.mm(wd, xd.T).T + b.float().double(), numfmt.get("fp32"))
    return _outputs(name, z, "fp32", nbytes, labels, accumulation)


def _encoded_outputs(model: SoftmaxRegression, images: torch.Tensor, name: str,
                     labels: torch.Tensor, accumulation: str) -> FormatOutputs:
    """Weights and inputs through `quant.get_encoding(name)`; inputs it leaves as uint8
    pixels are the exact k/255."""
    enc = get_encoding(name)
    w, b = _params64(model)
    w_enc = enc.encode_weight(w, channel_axis=0)
    x64 = images_to_float(images, torch.float64)
    x_enc = enc.encode_input(x64)
    xd = x64 if x_enc is None else x_enc.decode(torch.float64)
    return _decoded_outputs(name, w_enc.decode(torch.float64), xd, b,
                            w_enc.nbytes + b.numel() * 4, labels, accumulation)


def _block_weight(model: SoftmaxRegression, fmt: str) -> BlockScaled:
    """W encoded in block format ``fmt`` from its stored precision, blocks along K (axis -1)."""
    _params64(model)                                        # the finiteness check, first
    return BlockScaled.encode(model.linear.weight.detach().to("cpu"), fmt, axis=-1)


def _block_inputs(x64: torch.Tensor, fmt: str) -> torch.Tensor:
    """Float64 features block-rounded along K (`block_round`, one rounding each); NVFP4's
    tensor scale is the static one of the range [0, 1]."""
    # One extra row of ones makes the tensor's amax exactly 1 (features are in [0, 1]): blocks
    # lie inside rows, so the row changes no other block, and the tensor scale is the static
    # fp32(1 / (448 * 6)) whatever the batch holds (an empty batch encodes too).
    ext = torch.cat([x64, x64.new_ones(1, x64.shape[1])])
    return block_round(ext, get_block_format(fmt), axis=-1)[:-1]


def _block_outputs(model: SoftmaxRegression, images: torch.Tensor, fmt: str, inputs: bool,
                   labels: torch.Tensor, accumulation: str) -> FormatOutputs:
    """W in block format ``fmt`` (and the inputs too if ``inputs``), FP32 bias, FP32 softmax."""
    w_enc = _block_weight(model, fmt)
    _, b = _params64(model)
    x64 = images_to_float(images, torch.float64)
    xd = _block_inputs(x64, fmt) if inputs else x64
    name = fmt + (INPUTS_SUFFIX if inputs else "")
    return _decoded_outputs(name, w_enc.decode(torch.float64), xd, b,
                            w_enc.nbytes + b.numel() * 4, labels, accumulation)


def weight_bits(model: SoftmaxRegression, target: Any) -> float:
    """Bits per weight of W as stored under ``target``, scales included, the bias excluded.

    Parameters
    ----------
    model : SoftmaxRegression
    target : format spec or str
        A float format, one of `ENCODINGS` or of `BLOCK_TARGETS`.

    Returns
    -------
    float
        ``8 * bytes(W) / W.numel()``: a float format's width (TF32: held in FP32, 32); an
        encoding's ``nbytes`` of W (codes plus scales; ``integer_only``: int8 codes plus the
        int32 multipliers and one-byte shifts); a block format's `BlockScaled.nbytes` (packed
        codes of the padded blocks, block scales, NVFP4's tensor scale).

    Raises
    ------
    TypeError, ValueError
        For a model that is not a SoftmaxRegression or an unknown or integer format.
    """
    w, b = _params64(model)
    blk, enc = block_target(target), encoding_name(target)
    if blk is not None:
        nbytes = _block_weight(model, blk[0]).nbytes
    elif enc == "integer_only":
        import quant

        pipe = quant.quantize_softmax_regression(w.float(), b.float())
        nbytes = pipe.weight_bytes - 4 * len(pipe.bias_codes)
    elif enc is not None:
        nbytes = get_encoding(enc).encode_weight(w, channel_axis=0).nbytes
    else:
        f = numfmt.get(numfmt.HELD_IN.get(numfmt.get(target).name, target))
        if not f.is_float:
            raise ValueError(f"{f.name} is an integer format: it has no weights of its own")
        return float(f.bits)
    return 8 * nbytes / w.numel()


def _integer_only_outputs(model: SoftmaxRegression, images: torch.Tensor,
                          labels: torch.Tensor) -> FormatOutputs:
    """The integer-only pipeline (`quant.quantize_softmax_regression`): uint8 pixels (float
    features in [0, 1] are quantized to k/255 codes) x int8 per-class weights into int32,
    fixed-point requantized int8 logits and an integer softmax to uint8 probabilities. Its
    logits are relative to the row max (the top class at 0), which changes neither the
    softmax nor the cross-entropy. It has no naive softmax."""
    import quant

    x = images.reshape(images.shape[0], -1)
    if x.dtype != torch.uint8:
        # Float features (in [0, 1], checked by as_images) are taken as pixels k/255 and
        # quantized to their uint8 codes, as an int8 pipeline quantizes its input.
        x = torch.round(x.double() * 255).to(torch.uint8)
    w, b = _params64(model)
    pipe = quant.quantize_softmax_regression(w.float(), b.float())
    codes = pipe.logit_codes(x).to(torch.float64)
    z = (codes - 127.0) * pipe.logit_scale
    probs = pipe.probabilities(x).to(torch.float64) / pipe.softmax.out_max
    # The pipeline computes no loss: its loss is that of its dequantized logits in float64.
    ce = numfmt.cross_entropy_in_format(z, labels, "fp64")
    stable = torch.zeros(x.shape[0], dtype=torch.bool)  # the integer softmax cannot overflow
    return FormatOutputs("integer_only", z, probs, None, stable, ce, "fp64", pipe.weight_bytes)


def run_in_format(model: SoftmaxRegression, images: Any, fmt: Any, labels: Any = None, *,
                  accumulation: str = "torch") -> FormatOutputs:
    """The model's logits, softmax and loss for ``images`` under ``fmt``.

    Parameters
    ----------
    model : SoftmaxRegression
    images : Tensor or numpy array
        uint8 pixels or float features in [0, 1] (`as_images`).
    fmt : format spec or str
        A float format (anything `numfmt.get` accepts), one of `ENCODINGS` or one of
        `BLOCK_TARGETS` (case and surrounding spaces ignored).
    labels : Tensor or numpy array, optional
        (N,) ints in 0..C-1; without them ``cross_entropy`` is None.
    accumulation : {"torch", "sequential", "exact"}
        How the softmax sums the exps (`numfmt.informat`): as torch does (default: the half
        types and the formats torch has no kernel for accumulate in float32, rounded once),
        left to right with every partial sum rounded, or exactly.

    Returns
    -------
    FormatOutputs

    Raises
    ------
    ValueError
        For an unknown or integer format, or images `as_images` refuses.
    """
    check_model(model)
    check_accumulation(accumulation)
    images = as_images(images, model.in_features)
    given = labels is not None
    n = images.shape[0]
    y = as_labels(labels, n, model.num_classes) if given else torch.zeros(n, dtype=torch.int64)
    enc, blk = encoding_name(fmt), block_target(fmt)
    if blk is not None:
        out = _block_outputs(model, images, blk[0], blk[1], y, accumulation)
    elif enc == "integer_only":
        out = _integer_only_outputs(model, images, y)
    elif enc is not None:
        out = _encoded_outputs(model, images, enc, y, accumulation)
    else:
        f = numfmt.get(fmt)
        if not f.is_float:
            raise ValueError(f"{f.name} is an integer format: evaluate it through an encoding "
                             f"with a scale, one of {', '.join(ENCODINGS)}")
        out = _float_outputs(model, images, f, y, accumulation)
    return out if given else replace(out, cross_entropy=None)
