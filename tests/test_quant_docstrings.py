"""The Examples sections of quant's docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["quant.arith", "quant.accumulator", "quant.encodings", "quant.fixedpoint",
           "quant.logdomain.grid",
           "quant.scaled.encoding", "quant.logdomain.encoding"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
