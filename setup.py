"""Build hook for the one compiled module (everything else is in pyproject.toml).

``streams/tagging/_compiled.pyx`` is the C twin of the tagging core. It is optional: when it cannot
be compiled (no C compiler) the install goes on without it, with a warning, and
:mod:`streams.tagging.engine` runs its pure Python reference (same results, about 7 times slower).
"""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """``build_ext`` that warns and leaves an extension out, instead of failing, when it cannot be built."""

    def build_extensions(self):
        for ext in list(self.extensions):
            try:
                self.build_extension(ext)
            except Exception as exc:  # CompileError, LinkError, a missing compiler
                self.extensions.remove(ext)
                print(f"WARNING: {ext.name} not built ({exc}); the tagger runs its Python reference engine "
                      "(same results, slower). Install gcc and reinstall for the compiled engine.",
                      file=sys.stderr)


setup(
    ext_modules=cythonize(
        [Extension("streams.tagging._compiled", ["streams/tagging/_compiled.pyx"])],
        compiler_directives={"language_level": "3"},
        quiet=True,
    ),
    cmdclass={"build_ext": OptionalBuildExt},
)
