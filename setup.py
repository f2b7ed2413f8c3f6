"""Build hook for the one compiled module (everything else is in pyproject.toml).

``streams/tagging/_compiled.pyx`` is the C twin of the tagging core. It is optional: when no C
compiler is present the build goes on without it and :mod:`streams.tagging.engine` runs its pure
Python reference implementation (same results, about 7 times slower).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("streams.tagging._compiled", ["streams/tagging/_compiled.pyx"], optional=True)],
        compiler_directives={"language_level": "3"},
        quiet=True,
    )
)
