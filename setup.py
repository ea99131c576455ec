"""kemi-core's compiled parts (everything else is in pyproject.toml): kemi_core/sip/_fast.c, C
helpers of the SIP parser, and kemi_core/shared/_shmtable.c, hash tables in shared memory.
``optional=True``: without a C compiler or the Python headers the install goes on; the SIP
helpers run as pure Python, slower, and the shared store's tables stand in for _shmtable's."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kemi_core.sip._fast", sources=["kemi_core/sip/_fast.c"], optional=True),
        Extension("kemi_core.shared._shmtable", sources=["kemi_core/shared/_shmtable.c"],
                  optional=True),
    ],
)
