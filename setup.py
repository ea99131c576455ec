"""kemi-core's compiled part (everything else is in pyproject.toml): kemi_core/sip/_fast.c, C
helpers of the SIP parser. ``optional=True``: without a C compiler or the Python headers the
install goes on and the same helpers run as pure Python, slower."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kemi_core.sip._fast", sources=["kemi_core/sip/_fast.c"], optional=True),
    ],
)
