"""quant's layout (issue 10): the import graph, private names, and the compatibility aliases.

Read from the source itself (ast), so a module that imports upward, or reaches into another
module's private name, fails here.
"""

import ast
import importlib
import warnings
from pathlib import Path

import pytest
import torch

import numfmt
import quant

ROOT = Path(quant.__file__).parent
# Lower layers first; a module may import only from its own layer or the ones before it.
LAYERS = [
    {"_tensors", "policy", "accumulator", "fixedpoint", "metrics"},
    {"native"},
    {"exact_matmul"},
    {"scaled", "logdomain", "blockscaled"},
    {"integer"},
    {"arith", "encodings"},
    {"report"},
    {"__main__", "__init__"},
]
ALIASES = {"intmm": "exact_matmul", "integer_matmul": "integer.matmul",
           "integer_softmax": "integer.softmax", "integer_linear": "integer.linear",
           "calibrate": "scaled.calibrate"}
OTHERS: set[str] = set()   # folders outside this layering (none)


def own_modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in OTHERS or rel.stem in ALIASES or rel.name == "int8_head.py":
            continue
        yield rel, ast.parse(path.read_text())


def layer_of(rel: Path) -> int:
    top = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    return next(i for i, names in enumerate(LAYERS) if top in names)


def quant_imports(rel: Path, tree: ast.AST):
    package = ["quant", *rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("quant"):
                yield node, target


def test_the_import_graph_runs_one_way():
    for rel, tree in own_modules():
        mine = layer_of(rel)
        for node, target in quant_imports(rel, tree):
            parts = target.split(".")[1:]
            if not parts:                                      # "from quant import x"
                names = [a.name for a in node.names]
                parts = names[:1]
            other = layer_of(Path(*parts[:1]) if len(parts) > 1 else Path(parts[0] + ".py"))
            assert other <= mine, f"{rel} imports {target} from a higher layer"


def test_no_private_name_is_imported_from_another_module():
    for rel, tree in own_modules():
        for node, target in quant_imports(rel, tree):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                assert not private or alias.name == "_native", \
                    f"{rel} imports the private {alias.name} from {target}"


def test_no_module_over_400_lines_and_no_function_over_80():
    for rel, tree in own_modules():
        src = (ROOT / rel).read_text()
        assert src.count("\n") <= 400, f"{rel} has {src.count(chr(10))} lines"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= 80, f"{rel}:{node.lineno} {node.name} has {n} lines"


@pytest.mark.parametrize("old, new", sorted(ALIASES.items()))
def test_old_module_paths_still_import(old, new):
    mod_old, mod_new = (importlib.import_module(f"quant.{m}") for m in (old, new))
    for name in mod_new.__all__:
        assert getattr(mod_old, name) is getattr(mod_new, name)


def test_the_overflow_vocabulary_is_numfmts():
    assert quant.OverflowPolicy is numfmt.OverflowPolicy
    assert quant.QuantOverflowError is numfmt.RangeOverflowError
    err = quant.QuantOverflowError("op", (1,), 300, -128, 127, 2, 5)
    assert (err.op, err.index, err.value, err.qmin, err.qmax, err.count, err.total) == \
        ("op", (1,), 300, -128, 127, 2, 5)


def test_native_is_the_one_place_that_picks(monkeypatch):
    cpu = torch.zeros(2)
    monkeypatch.setenv("QUANT_NATIVE", "0")
    assert quant.native.implementation(cpu) == "torch"
    monkeypatch.setenv("QUANT_NATIVE", "1")
    want = "native" if quant.native.available() else "torch"
    assert quant.native.implementation(cpu) == want
    assert quant.native.implementation(torch.empty(2, device="meta")) == "torch"
    assert set(quant.native.IMPLEMENTATIONS) == {"native", "torch"}


def test_deprecated_keywords_and_attributes_still_work():
    w = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    b = torch.zeros(3)
    with pytest.warns(DeprecationWarning, match="kernel="):
        old = quant.quantize_softmax_regression(w, b, backend="int64")
    with pytest.warns(DeprecationWarning, match="prob_dtype="):
        old16 = quant.quantize_softmax_regression(w, b, kernel="int64", out_dtype="uint16")
    new = quant.quantize_softmax_regression(w, b, kernel="int64")
    assert old.kernel == old.backend == new.kernel == "int64"
    assert old16.softmax.prob_dtype == torch.uint16
    sm = new.softmax
    assert (sm.n_classes, sm.out_dtype, sm.out_max, sm.out_scale) == \
        (sm.num_classes, sm.prob_dtype, sm.prob_max, sm.prob_scale) == (3, torch.uint8, 255,
                                                                      1 / 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quant.make_integer_softmax(0.05, num_classes=3, prob_dtype="uint8")
    with pytest.raises(TypeError, match="not both"):
        quant.make_integer_softmax(0.05, num_classes=3, n_classes=3)
