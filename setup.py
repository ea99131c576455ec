"""kemi-core's optional C helpers (kemi_core/sip/_fast.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler or the Python headers the install goes on and the SIP
parser uses the pure-Python forms of the helpers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kemi_core.sip._fast", sources=["kemi_core/sip/_fast.c"], optional=True),
    ]
)
