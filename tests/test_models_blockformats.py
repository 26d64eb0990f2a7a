"""models under the block-scaled formats (issue 12 part 5): the rows compute what they claim.

Expected values come from the exact reference `numfmt.block_codec.block_round` (the model uses
the fast `quant.blockscaled.BlockScaled`), from `numfmt.round_to` for NVFP4's static input
tensor scale, and from counting bytes by hand.
"""

from __future__ import annotations

import math

import numfmt
import pytest
import torch
from numfmt.block_codec import block_round
from numfmt.blocks import block_format_names, get_block_format

from matplotlib.text import Text

import models.bits_plot as bits_plot
import models.plots as plots
from models.cli import build_parser, check_arguments
from models.evaluation import (BLOCK_TARGETS, FormatResult, default_targets, evaluate_all,
                               run_in_format, target_name, weight_bits)
from models.softmax_regression import SoftmaxRegression

BLOCKS = block_format_names()


@pytest.fixture(scope="module")
def model_and_images():
    g = torch.Generator().manual_seed(12)
    m = SoftmaxRegression()                                    # (10, 784), as evaluated
    with torch.no_grad():
        m.linear.weight.copy_(torch.randn(10, 784, generator=g) * 0.05)
        m.linear.weight[3, 100] = 0.9                          # an outlier in one block
        m.linear.bias.copy_(torch.randn(10, generator=g) * 0.1)
    x = torch.randint(0, 256, (5, 28, 28), generator=g, dtype=torch.uint8)
    x[1] = x[1] // 3                                           # an image that never reaches 255
    return m, x


def fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float().double()


def nvfp4_static_inputs(x64: torch.Tensor) -> torch.Tensor:
    """NVFP4 of features in [0, 1] with the tensor scale S = fp32(1 / (448 * 6)), built from
    numfmt.round_to: block scale E4M3(amax / 6 / S), elements E2M1(x / (s * S))."""
    s_t = float(torch.tensor(1 / (448 * 6), dtype=torch.float32))
    blocks = x64.reshape(x64.shape[0], -1, 16)
    amax = blocks.abs().amax(-1, keepdim=True)
    s = numfmt.round_to(amax / 6 / s_t, "fp8_e4m3fn")
    d = s * s_t
    q = torch.where(d > 0, blocks / torch.where(d > 0, d, 1), 0)
    e = numfmt.round_to(q.clamp(-6, 6), "fp4_e2m1fn")
    return (e * d).reshape(x64.shape)


@pytest.mark.parametrize("name", BLOCKS)
def test_weight_rows_use_the_block_rounded_weights(model_and_images, name):
    m, x = model_and_images
    w = m.linear.weight.detach().double()
    wd = block_round(w, name, axis=-1)                         # blocks along K, each class row
    x64 = x.reshape(5, -1).double() / 255
    b = m.linear.bias.detach().double()
    out = run_in_format(m, x, name)
    assert out.name == name and out.softmax_format == "fp32"
    assert torch.equal(out.logits, fp32(x64 @ wd.T + b))
    # the decoded weights are not the weights: the format rounds (and blocks matter)
    assert not torch.equal(out.logits, fp32(x64 @ w.T + b))


@pytest.mark.parametrize("name", BLOCKS)
def test_weight_and_input_rows_block_round_the_features_too(model_and_images, name):
    m, x = model_and_images
    w = m.linear.weight.detach().double()
    wd = block_round(w, name, axis=-1)
    x64 = x.reshape(5, -1).double() / 255
    if get_block_format(name).tensor_scale is None:
        # no tensor scale: each image's blocks alone, one image at a time
        xd = torch.cat([block_round(x64[i:i + 1], name, axis=-1) for i in range(5)])
    else:
        xd = nvfp4_static_inputs(x64)
    b = m.linear.bias.detach().double()
    out = run_in_format(m, x, name + "_w_x")
    assert out.name == name + "_w_x"
    assert torch.equal(out.logits, fp32(xd @ wd.T + b))
    assert not torch.equal(xd, x64)


@pytest.mark.parametrize("name", BLOCK_TARGETS)
def test_block_rows_do_not_depend_on_the_batch(model_and_images, name):
    m, x = model_and_images
    """One image alone or in a batch: the same values up to the float64 sum's order (torch.mm
    may sum in another order for another N, and the FP32 rounding after it may then differ by
    one ulp); an input scale taken from the batch would move them by the element grid."""
    full = run_in_format(m, x, name).logits
    for i in range(x.shape[0]):
        alone = run_in_format(m, x[i:i + 1], name).logits[0]
        torch.testing.assert_close(alone, full[i], rtol=2 ** -23, atol=1e-9, msg=str(i))


@pytest.mark.parametrize("name", BLOCKS)
def test_bytes_and_bits_count_codes_scales_and_bias(model_and_images, name):
    m, x = model_and_images
    f = get_block_format(name)
    bits = {"mxfp8_e4m3": 8, "mxfp8_e5m2": 8, "mxfp6_e3m2": 6, "mxfp6_e2m3": 6,
            "mxfp4_e2m1": 4, "mxint8": 8, "nvfp4": 4, "nvfp4_no_tensor_scale": 4}[name]
    size = {"nvfp4": 16, "nvfp4_no_tensor_scale": 16}.get(name, 32)
    blocks = 10 * math.ceil(784 / size)                        # MX rows: 24 blocks + one of 16
    w_bytes = blocks * size * bits // 8 + blocks * 1 + (4 if name == "nvfp4" else 0)
    for target in (name, name + "_w_x"):
        r = evaluate_all(m, x, torch.zeros(5, dtype=torch.int64), [target])[0]
        assert r.weight_bytes == w_bytes + 10 * 4, target       # + the FP32 bias
        assert weight_bits(m, target) == 8 * w_bytes / 7840
    assert f.bits_per_element == bits + 8 / size               # the nominal figure, unpadded


def test_block_targets_are_in_the_defaults_and_names_are_normalised():
    assert BLOCK_TARGETS == tuple(n + s for n in BLOCKS for s in ("", "_w_x"))
    assert set(BLOCK_TARGETS) <= set(default_targets())
    assert target_name(" MXFP4_E2M1 ") == "mxfp4_e2m1"
    assert target_name("NvFp4_W_X") == "nvfp4_w_x"
    for bad in ("mxfp5", "mxfp4_e2m1_w", "mxfp4_e2m1_x_w"):
        with pytest.raises(ValueError, match=f"unknown number format '{bad}'.*mxfp4_e2m1, "
                                             "mxint8.*<name>_w_x"):
            target_name(bad)
    a = build_parser().parse_args(["evaluate", "--formats", " MXINT8 ,nvfp4_No_Tensor_Scale_w_x,fp16"])
    check_arguments(a)
    assert a.formats == ["mxint8", "nvfp4_no_tensor_scale_w_x", "fp16"]


def test_weight_bits_of_the_other_encodings(model_and_images):
    m, _ = model_and_images
    assert weight_bits(m, "fp16") == 16 and weight_bits(m, "tf32") == 32
    assert weight_bits(m, "scaled_int8_per_tensor") == 8 + 32 / 7840   # one FP32 scale
    assert weight_bits(m, "scaled_int8_per_channel") == 8 + 10 * 32 / 7840
    assert weight_bits(m, "log_int8") == 8 + 2 * 8 / 7840            # offset + frac bits
    # int8 codes, an int32 multiplier and a one-byte shift per class (the bias excluded)
    assert weight_bits(m, "integer_only") == 8 + 10 * (4 + 1) * 8 / 7840
    with pytest.raises(ValueError, match="integer format"):
        weight_bits(m, "int8")


# ---- the figure ------------------------------------------------------------------------------
def result(name, acc):
    return FormatResult(name, acc, 0.99, 0.4, 0.4, 0.01, 0.0, 0.0, 100)


def test_bits_accuracy_points_and_labels_do_not_collide(monkeypatch, tmp_path):
    figs = []
    monkeypatch.setattr(plots, "write_figure", lambda fig, path, dpi=150: figs.append(fig) or [path])
    names = ["fp32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "fp4_e2m1fn",
             "scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8", *BLOCK_TARGETS]
    results = [result(n, 0.84 - 0.001 * i) for i, n in enumerate(names)]
    results[5] = result("fp4_e2m1fn", 0.35)                   # far below: the lower panel
    results.append(result("fp8_e5m2fnuz", results[4].accuracy))  # same point as fp8_e5m2
    bits = {"fp32": 32, "fp16": 16, "bf16": 16, "fp8_e4m3fn": 8, "fp8_e5m2": 8,
            "fp8_e5m2fnuz": 8, "fp4_e2m1fn": 4, "scaled_int8_per_tensor": 8.004,
            "scaled_int8_per_channel": 8.04, "log_int8": 8.002}
    bits.update({n: 4.3 if "fp4" in n else 6.4 if "fp6" in n else 8.4 for n in BLOCK_TARGETS})
    pts = bits_plot.bits_accuracy_points(results, bits)
    assert pts == [(r.format, float(bits[r.format]), r.accuracy) for r in results]
    with pytest.raises(ValueError, match="no positive bits per weight for 'fp16'"):
        bits_plot.bits_accuracy_points(results, {k: v for k, v in bits.items() if k != "fp16"})
    bits_plot.plot_bits_accuracy(results, bits, tmp_path)
    (fig,) = figs
    drawn = sorted((float(l.get_xdata()[0]), float(l.get_ydata()[0]))
                   for ax in fig.axes for l in ax.lines)
    assert drawn == sorted((b, a) for _, b, a in pts)         # every point, where it belongs
    assert any("bits per weight" in ax.get_xlabel() for ax in fig.axes)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [(ax, t) for ax in fig.axes for t in ax.texts]
    # one label per distinct point; formats at the same point share it
    assert len(labels) == len({(b, a) for _, b, a in pts})
    text = [t.get_text() for _, t in labels]
    assert any(x.startswith("fp8_e5m2 = fp8_e5m2fnuz  ") for x in text), text
    assert all(any(n in x.split("  ")[0].split(" = ") for x in text) for n in names)
    # the text alone: an Annotation's own extent includes its leader line
    boxes = [Text.get_window_extent(t, renderer) for _, t in labels]
    for i, ((ax, t), a) in enumerate(zip(labels, boxes)):
        frame = ax.get_window_extent(renderer)
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1, \
            t.get_text()
        for j in range(i):
            assert not a.overlaps(boxes[j]), (t.get_text(), labels[j][1].get_text())
