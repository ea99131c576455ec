"""kemi-core's compiled parts; everything else is in pyproject.toml.

- kemi_core/sip/_fast.c: C helpers of the SIP parser;
- the call path's modules listed in pyproject.toml ``[tool.kemi.compiled]``, compiled by Cython
  (compiled_build.py).

``optional=True``: without a C compiler, the Python headers or Cython the install goes on and the
same code runs as pure Python, slower.
"""

import sys
from pathlib import Path

from setuptools import Extension, setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compiled_build import SETUP_OPTIONS, extensions  # noqa: E402

setup(
    ext_modules=[
        Extension("kemi_core.sip._fast", sources=["kemi_core/sip/_fast.c"], optional=True),
        *extensions(Path(__file__).parent),
    ],
    options=SETUP_OPTIONS,
)
