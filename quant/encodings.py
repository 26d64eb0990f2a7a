"""The one table of named 8-bit encodings of a linear model: what its weights and inputs become.

quant's report, `models.evaluate` and the benchmarks name their int8 variants from this
table, so one name has one meaning everywhere:

=========================  =====================================================  ============
name                       weights                                                inputs
=========================  =====================================================  ============
scaled_int8_per_tensor     `ScaledInt8`, symmetric int8 (-127..127), one min-max  uint8 codes
                           scale                                                  over [0, 1]
scaled_int8_per_channel    `ScaledInt8`, a min-max scale per output channel        uint8 codes
                                                                                  over [0, 1]
log_int8                   `LogInt8` (frac_bits 3, offset from max |w|)            `LogInt8`
log_int8_weights           `LogInt8`, as above                                    uint8 pixels
integer_only               the integer-only pipeline (`quantize_softmax_regression`)  uint8
=========================  =====================================================  ============

Inputs are encoded statically over the pixel range [0, 1], widened only to the data's own
range where data lie outside it, so an image's codes never depend on its batch mates; for
pixels k/255 the uint8 codes are k exactly (scale 1/255, zero point 0).

A new encoding gets one row here (its class lives in its own folder, e.g. `quant.scaled`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .logdomain import LogInt8
from .scaled import ScaledInt8

__all__ = ["Encoding", "encodings", "encoding_names", "get_encoding"]

_PIXEL_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Encoding:
    """One named encoding of a linear model's weights and inputs.

    Attributes
    ----------
    name : str
        Canonical lower-case name (`encoding_names`).
    summary : str
        One line: what the weights and inputs become.
    weight_bits : int
        Bits per stored weight code (8).
    """

    name: str
    summary: str
    weight_bits: int
    _weight: Callable[[torch.Tensor, int], Any] = field(repr=False, compare=False)
    _input: Callable[[torch.Tensor], Any] | None = field(repr=False, compare=False)

    def encode_weight(self, w: torch.Tensor, channel_axis: int = 0) -> Any:
        """The encoded weight matrix.

        Parameters
        ----------
        w : torch.Tensor
            Real weights (not modified).
        channel_axis : int
            The axis of output channels (classes): 0 for torch's (out, in) layout. Only the
            per-channel encoding uses it.

        Returns
        -------
        ScaledInt8 or LogInt8
            An object with ``.codes``, ``.decode(dtype)`` and ``.nbytes`` (codes plus scales,
            zero points or offset as stored).

        Raises
        ------
        TypeError
            For ``integer_only``: its weights cannot be encoded alone (the pipeline folds the
            bias and the requantization into them); build it with
            ``quant.quantize_softmax_regression(weight, bias)``.
        """
        return self._weight(w, channel_axis)

    def encode_input(self, x: torch.Tensor) -> Any | None:
        """The encoded inputs (features, pixels in [0, 1]), or None where they stay uint8.

        Parameters
        ----------
        x : torch.Tensor
            Real features, any shape (not modified).

        Returns
        -------
        ScaledInt8 or LogInt8 or None
            Encoded statically over [0, 1], widened only for data outside it (module
            docstring); None for ``log_int8_weights`` and ``integer_only``, whose inputs are
            the uint8 pixels themselves.
        """
        return None if self._input is None else self._input(x)


def _data_range(x: torch.Tensor) -> tuple[float, float]:
    """[0, 1] widened to the data's own extremes where they lie outside it."""
    if x.numel() == 0:
        return _PIXEL_RANGE
    lo, hi = (float(v) for v in torch.aminmax(x.detach().reshape(-1)))
    return min(_PIXEL_RANGE[0], lo), max(_PIXEL_RANGE[1], hi)


def _scaled_weight(per_channel: bool) -> Callable[[torch.Tensor, int], ScaledInt8]:
    def encode(w: torch.Tensor, channel_axis: int = 0) -> ScaledInt8:
        # symmetric int8 (codes -127..127), min-max scale per tensor or per channel
        return ScaledInt8.encode(w, axis=channel_axis if per_channel else None,
                                 calibration="minmax")
    return encode


def _scaled_input(x: torch.Tensor) -> ScaledInt8:
    """Asymmetric uint8 with a min-max scale over the static range, as int8 pipelines
    quantize activations."""
    lo, hi = _data_range(x)
    anchor = ScaledInt8.encode(torch.tensor([lo, hi], dtype=torch.float64), zero_point=None,
                               calibration="minmax")
    return ScaledInt8.encode(x, scale=float(anchor.scale), zero_point=int(anchor.zero_point),
                             dtype=anchor.dtype)


def _log_weight(w: torch.Tensor, channel_axis: int = 0) -> LogInt8:
    return LogInt8.encode(w)        # offset calibrated so that max |w| gets the top code


def _log_input(x: torch.Tensor) -> LogInt8:
    lo, hi = _data_range(x)
    anchor = LogInt8.encode(torch.tensor([max(hi, -lo)], dtype=torch.float64))
    return LogInt8.encode(x, offset=anchor.offset)


def _integer_only_weight(w: torch.Tensor, channel_axis: int = 0) -> Any:
    raise TypeError("integer_only is a whole integer pipeline (weights with the bias and the "
                    "fixed-point requantization folded in, then an integer softmax); its "
                    "weights are not encoded alone: build it with "
                    "quant.quantize_softmax_regression(weight, bias)")


_TABLE = (
    Encoding("scaled_int8_per_tensor",
             "int8 weights with one min-max scale (symmetric, -127..127); inputs uint8 codes "
             "over [0, 1]", 8, _scaled_weight(False), _scaled_input),
    Encoding("scaled_int8_per_channel",
             "int8 weights with a min-max scale per output channel; inputs uint8 codes over "
             "[0, 1]", 8, _scaled_weight(True), _scaled_input),
    Encoding("log_int8",
             "weights and inputs log-encoded (sign + 7-bit log2 magnitude in 1/8 steps)", 8,
             _log_weight, _log_input),
    Encoding("log_int8_weights",
             "log-encoded weights (sign + 7-bit log2 magnitude); inputs stay uint8 pixels", 8,
             _log_weight, None),
    Encoding("integer_only",
             "int8 weights per class x uint8 pixels into int32, fixed-point requantization, "
             "integer softmax (quant.quantize_softmax_regression)", 8, _integer_only_weight,
             None),
)


def encodings() -> tuple[Encoding, ...]:
    """Every named encoding, in table order.

    Returns
    -------
    tuple of Encoding
    """
    return _TABLE


def encoding_names() -> tuple[str, ...]:
    """The canonical names, in table order.

    Returns
    -------
    tuple of str
    """
    return tuple(e.name for e in _TABLE)


def _canonical(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def get_encoding(name: str | Encoding) -> Encoding:
    """The encoding of a name, in any case and spacing ("Log_Int8 ", "log int8").

    Parameters
    ----------
    name : str or Encoding
        A name (case, surrounding spaces, and spaces / hyphens for underscores do not
        matter), or an `Encoding`, returned as is.

    Returns
    -------
    Encoding

    Raises
    ------
    ValueError
        For an unknown name; the message lists the names.
    TypeError
        For anything but a string or an Encoding.

    Examples
    --------
    >>> import quant
    >>> quant.get_encoding(" Log_Int8 ").name
    'log_int8'
    """
    if isinstance(name, Encoding):
        return name
    if not isinstance(name, str):
        raise TypeError(f"an encoding name must be a string, got {type(name).__name__}")
    key = _canonical(name)
    for e in _TABLE:
        if e.name == key:
            return e
    raise ValueError(f"unknown encoding {name!r}; known: {', '.join(encoding_names())}")
