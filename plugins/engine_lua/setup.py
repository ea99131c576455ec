"""kemi-engine-lua's modules on the call path, compiled by Cython when it is there (the repository's
compiled_build.py, list in its pyproject.toml); pure Python otherwise."""

import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
try:
    from compiled_build import SETUP_OPTIONS, extensions
except ImportError:  # built outside the kemi repository: pure Python
    setup()
else:
    setup(ext_modules=extensions(HERE), options=SETUP_OPTIONS)
