"""Shared set-up for the Python engine tests: a Core with the module loaded and test exports."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import Core, CoreConfig, KemiExport, MsgContext, RecvInfo, RouteType
from kemi_core.sip import parse_datagram
from kemi_core.testing import ModuleLoader
from kemi_engine_python.engine import PythonEngine
from kemi_engine_python.modules import PythonEngineModule

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-pyeng-1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: pyeng-call-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\n"
    b"X-Test: hello there\r\n"
    b"Content-Length: 0\r\n\r\n"
)

REPLY_180 = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-pyeng-2\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>;tag=b1\r\n"
    b"Call-ID: pyeng-call-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)

RCV = RecvInfo(proto="udp", src_ip="127.0.0.1", src_port=5070, dst_ip="127.0.0.2", dst_port=5060)


class PyEnv:
    """One Core with app_python (or a variant) loaded and a script written to tmp_path."""

    def __init__(self, tmp_path: Path, variant: str = "app_python") -> None:
        self.tmp_path = tmp_path
        self.core = Core(CoreConfig())
        self.loader = ModuleLoader(self.core, available={})
        self.module = PythonEngineModule(variant)
        self.variant = variant
        self.loader.register(variant, self.module)

    def write(self, text: str, name: str = "script.py") -> Path:
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    def start(self, script: str | Path, exports: Iterable[KemiExport] = (),
              params: dict[str, Any] | None = None, load: bool = True) -> PythonEngine:
        path = script if isinstance(script, Path) else self.write(script)
        param = "load" if self.variant == "app_python3s" else "script_name"
        self.core.set_param(self.variant, param, str(path))
        for name, value in (params or {}).items():
            self.core.set_param(self.variant, name, value)
        self.core.registry.add(exports)
        self.loader.init_all()
        spec = self.core.engine_specs["python"]
        if not load:
            engine = spec.factory(self.core)
            assert isinstance(engine, PythonEngine)
            self.core.engine = engine
            return engine
        engine = self.core.use_engine(spec)  # as the server: the core builds and reloads it
        assert isinstance(engine, PythonEngine)
        return engine

    def ctx(self, raw: bytes = INVITE) -> MsgContext:
        return self.core.new_context(parse_datagram(raw), RCV)

    def reply_ctx(self) -> MsgContext:
        return self.core.new_context(parse_datagram(REPLY_180), RCV, RouteType.CORE_ONREPLY)


@pytest.fixture
def pyenv(tmp_path: Path) -> Callable[..., PyEnv]:
    def make(variant: str = "app_python") -> PyEnv:
        return PyEnv(tmp_path, variant)

    return make
