"""quant.encodings: the one table of named encodings (and issue 9 items 17 and 24).

Expected values are computed from the definitions: min-max scales from the data, the exact
log code of max |w| (mpmath), pixel codes k for k/255, the stored bytes counted by hand.
"""

import mpmath
import pytest
import torch

import quant
from quant.encodings import Encoding, encoding_names, encodings, get_encoding

NAMES = ("scaled_int8_per_tensor", "scaled_int8_per_channel", "log_int8", "log_int8_weights",
         "integer_only")


def weights() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(10, 784, generator=g, dtype=torch.float64) * \
        torch.logspace(-1, 1, 10, dtype=torch.float64)[:, None]


def test_the_table_and_its_names():
    assert encoding_names() == NAMES
    assert all(isinstance(e, Encoding) and e.weight_bits == 8 and e.summary for e in encodings())
    assert all(e.name == e.name.lower() for e in encodings())
    with pytest.raises(Exception):
        encodings()[0].name = "x"                               # frozen


@pytest.mark.parametrize("spelling", ["Log_Int8 ", "LOG_INT8", " log int8", "log-int8"])
def test_names_are_case_and_space_insensitive(spelling):
    assert get_encoding(spelling).name == "log_int8"
    assert get_encoding(get_encoding(spelling)) is get_encoding("log_int8")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known: scaled_int8_per_tensor, .*integer_only"):
        get_encoding("log_int9")
    with pytest.raises(TypeError, match="string"):
        get_encoding(8)


def test_scaled_weights_use_min_max_scales_per_tensor_and_per_channel():
    w = weights()
    t = get_encoding("scaled_int8_per_tensor").encode_weight(w)
    assert float(t.scale) == float((w.abs().max() / 127).float())
    c = get_encoding("scaled_int8_per_channel").encode_weight(w)
    want = (w.abs().amax(1) / 127).float().double()
    assert c.axis == 0 and torch.equal(c.scale, want)
    ct = get_encoding("scaled_int8_per_channel").encode_weight(w.T.contiguous(), channel_axis=1)
    assert ct.axis == 1 and torch.equal(ct.scale, want) and torch.equal(ct.codes, c.codes.T)
    assert t.nbytes == 7840 + 4 and c.nbytes == 7840 + 4 * 10     # codes + float32 scales


def test_log_weights_put_max_abs_on_the_top_code():
    w = weights()
    for name in ("log_int8", "log_int8_weights"):
        e = get_encoding(name).encode_weight(w)
        top = float(w.abs().max())
        with mpmath.workprec(200):
            code = int(mpmath.nint(8 * mpmath.log(mpmath.mpf(top), 2)))
        assert e.offset == code - 127 and int(e.codes.abs().max()) == 127
        assert e.nbytes == 7840 + 2


def test_inputs_pixels_become_their_own_codes_and_stay_batch_independent():
    k = torch.arange(256, dtype=torch.float64)
    x = (k / 255).reshape(1, -1)
    for name in ("scaled_int8_per_tensor", "scaled_int8_per_channel"):
        e = get_encoding(name).encode_input(x)
        assert e.dtype == torch.uint8 and e.codes.reshape(-1).tolist() == list(range(256))
        assert float(e.scale) == float(torch.tensor(1 / 255).float()) and int(e.zero_point) == 0
        part = get_encoding(name).encode_input(x[:, 10:20])      # same static range
        assert torch.equal(part.codes, e.codes[:, 10:20])
    wide = get_encoding("scaled_int8_per_tensor").encode_input(torch.tensor([-1.0, 2.0]))
    assert wide.decode(torch.float64).tolist() == pytest.approx([-1.0, 2.0], abs=3 / 255)
    lg = get_encoding("log_int8").encode_input(x)
    assert isinstance(lg, quant.LogInt8) and int(lg.codes.max()) == 127      # 1.0 on top
    assert get_encoding("log_int8").encode_input(x[:, 5:9]).offset == lg.offset


def test_log_int8_weights_and_integer_only_keep_uint8_pixels():
    assert get_encoding("log_int8_weights").encode_input(torch.rand(3, 4)) is None
    assert get_encoding("integer_only").encode_input(torch.rand(3, 4)) is None
    with pytest.raises(TypeError, match="quantize_softmax_regression"):
        get_encoding("integer_only").encode_weight(weights())
