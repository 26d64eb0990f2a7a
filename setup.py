"""Build step for quant's optional C extensions; metadata lives in pyproject.toml.

quant.native._native (quant/native/_native.c: the encode / decode loops and the fused softmax
head) and quant.native._int8_head (quant/native/int8_head.c: the whole integer head in one
call; its x86 paths are compiled per function with target attributes and picked at run time).
Both are optional: where no C compiler is available the install still succeeds and quant
falls back to its pure-torch loops (`quant.native.available()` says which is in use).
It is built with OpenMP where the compiler has it (so that, with torch imported first, its
loops run on torch's own OpenMP threads) and retried without OpenMP where that fails.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, LinkError

UNIX = sys.platform != "win32"
# -ffp-contract=off: the loops' float operations must round exactly as torch's passes do.
BASE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-Wno-unknown-pragmas"] if UNIX else ["/O2", "/fp:strict"]
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []


class BuildExtOpenMPOrNot(build_ext):
    """Builds with OpenMP, and again without it if the compiler or linker refuses."""

    def build_extension(self, ext: Extension) -> None:
        if OPENMP:
            try:
                super().build_extension(ext)
                return
            except (CCompilerError, CompileError, LinkError) as err:     # no OpenMP here
                print(f"{ext.name}: building without OpenMP ({err})", file=sys.stderr)
                ext.extra_compile_args = [a for a in ext.extra_compile_args if a not in OPENMP]
                ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP]
        super().build_extension(ext)


def _extension(name: str, source: str) -> Extension:
    """An optional extension built with the flags above (OpenMP dropped where refused)."""
    # include_dirs ".": every extension includes numfmt/openmp_library.h
    return Extension(name, [source], optional=True, extra_compile_args=BASE_FLAGS + OPENMP,
                     extra_link_args=OPENMP, include_dirs=["."],
                     depends=["numfmt/openmp_library.h"])


setup(
    ext_modules=[_extension("quant.native._native", "quant/native/_native.c"),
                 _extension("quant.native._int8_head", "quant/native/int8_head.c"),
                 _extension("numfmt._native", "numfmt/_native.c")],
    cmdclass={"build_ext": BuildExtOpenMPOrNot},
)
