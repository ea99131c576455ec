"""kemi-engine-lua's compiled part (everything else is in pyproject.toml):
src/kemi_engine_lua/_cbridge.c, KSR calls from Lua 5.4 as Lua C closures. ``optional=True``:
without a C compiler or the Python headers the install goes on and every KSR call goes through
lupa, as it does on a Lua other than lupa.lua54."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kemi_engine_lua._cbridge", sources=["src/kemi_engine_lua/_cbridge.c"],
                  optional=True),
    ],
)
