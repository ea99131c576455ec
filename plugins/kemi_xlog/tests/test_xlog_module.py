"""kemi_xlog loaded through the module loader: params, exports, formats and levels."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import kemi_xlog
from kemi_core.api import (
    ALERT,
    BUG,
    NOTICE,
    Core,
    CoreConfig,
    ModuleError,
    MsgContext,
    RecvInfo,
    set_pv,
)
from kemi_core.sip import parse_datagram
from kemi_core.testing import ModuleLoader

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:alice@atlanta.com>;tag=1\r\n"
    b"Call-ID: xlog-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def load(params: dict[str, object] | None = None) -> Core:
    core = Core(CoreConfig())
    loader = ModuleLoader(core, available={})
    loader.register("xlog", kemi_xlog)
    for name, value in (params or {}).items():
        core.set_param("xlog", name, value)
    loader.init_all()
    return core


def new_ctx(core: Core) -> MsgContext:
    return core.new_context(parse_datagram(INVITE), RecvInfo("udp", "10.0.0.1", 5060,
                                                             "127.0.0.1", 5060))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="kemi.script")
    yield caplog


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "kemi.script"]


def test_exports_and_cfg_functions_registered() -> None:
    core = load()
    names = set(core.registry.module("xlog"))
    assert names == {"xlog", "xdbg", "xinfo", "xnotice", "xwarn", "xerr", "xcrit", "xalert"}
    for cfg_name in ("xlog", "xlogl", "xdbgl", "xlogm", "xbug", "xinfo"):
        assert cfg_name in core.cfg_functions
    assert core.modparam("xlog", "prefix") == "<script>: "


def test_level_functions(logs: pytest.LogCaptureFixture) -> None:
    core = load()
    ctx = new_ctx(core)
    funcs = core.registry.module("xlog")
    for name in ("xdbg", "xinfo", "xnotice", "xwarn", "xerr", "xcrit", "xalert"):
        assert funcs[name].func(ctx, f"{name} $rm from $si\n") == 1
    assert records(logs) == [
        (logging.DEBUG, "<script>: xdbg INVITE from 10.0.0.1"),
        (logging.INFO, "<script>: xinfo INVITE from 10.0.0.1"),
        (NOTICE, "<script>: xnotice INVITE from 10.0.0.1"),
        (logging.WARNING, "<script>: xwarn INVITE from 10.0.0.1"),
        (logging.ERROR, "<script>: xerr INVITE from 10.0.0.1"),
        (logging.CRITICAL, "<script>: xcrit INVITE from 10.0.0.1"),
        (ALERT, "<script>: xalert INVITE from 10.0.0.1"),
    ]


@pytest.mark.parametrize(("slevel", "expected"), [
    ("L_ERR", logging.ERROR), ("L_INFO", logging.INFO), ("L_DBG", logging.DEBUG),
    ("L_WARN", logging.WARNING), ("L_NOTICE", NOTICE), ("L_CRIT", logging.CRITICAL),
    ("L_ALERT", ALERT), ("L_BUG", BUG), ("l_info", logging.INFO), ("L_BOGUS", BUG), ("L_XYZ", logging.ERROR),
])
def test_xlog_levels(logs: pytest.LogCaptureFixture, slevel: str, expected: int) -> None:
    core = load()
    ctx = new_ctx(core)
    assert core.registry.lookup("xlog", "xlog").func(ctx, slevel, "ru=$ru") == 1  # type: ignore[union-attr]
    assert (expected, "<script>: ru=sip:bob@example.com") in records(logs)


def test_level_from_pv(logs: pytest.LogCaptureFixture) -> None:
    core = load()
    ctx = new_ctx(core)
    set_pv(ctx, "$var(loglevel)", 2)
    assert kemi_xlog.xlog(ctx, "$var(loglevel)", "via pv") == 1
    assert records(logs) == [(logging.INFO, "<script>: via pv")]


def test_bad_format_is_an_error_not_an_exception(logs: pytest.LogCaptureFixture) -> None:
    core = load()
    ctx = new_ctx(core)
    assert kemi_xlog.xinfo(ctx, "value $nosuch\n") == -1
    assert any("bad format" in m for _, m in records(logs))


def test_disabled_level_skips_formatting(caplog: pytest.LogCaptureFixture) -> None:
    core = load()
    ctx = new_ctx(core)
    caplog.set_level(logging.INFO, logger="kemi.script")
    assert kemi_xlog.xdbg(ctx, "never $nosuch") == 1
    assert records(caplog) == []


def test_params_prefix_buf_size(logs: pytest.LogCaptureFixture) -> None:
    core = load({"prefix": "[$ci] ", "prefix_mode": 1, "buf_size": 10})
    ctx = new_ctx(core)
    kemi_xlog.xinfo(ctx, "0123456789abcdef")
    assert records(logs) == [(logging.INFO, "[xlog-1] 0123456789")]


def test_bad_params_fail_mod_init() -> None:
    with pytest.raises(ModuleError):
        load({"buf_size": 0})
    with pytest.raises(ModuleError):
        load({"prefix": "$nosuch", "prefix_mode": 1})


def test_cfg_functions(logs: pytest.LogCaptureFixture) -> None:
    core = load({"methods_filter": 1, "long_format": 1})  # 1 = INVITE is filtered
    ctx = new_ctx(core)
    cfg = core.cfg_functions
    assert cfg["xlog"].func(ctx, "only format $rm") == 1
    assert cfg["xlog"].func(ctx, "L_WARN", "two args") == 1
    assert cfg["xlog"].func(ctx, "LOG_LOCAL3", "L_INFO", "three args") == 1
    assert cfg["xlogm"].func(ctx, "L_ERR", "filtered") == 1
    ctx.extra["cfg_line"] = 42
    ctx.extra["cfg_file"] = "kamailio.cfg"
    assert cfg["xlogl"].func(ctx, "L_INFO", "with line") == 1
    assert cfg["xbug"].func(ctx, "bug") == 1
    assert records(logs) == [
        (logging.ERROR, "<script>: only format INVITE"),
        (logging.WARNING, "<script>: two args"),
        (logging.INFO, "<script>: three args"),
        (logging.INFO, "<script>: kamailio.cfg:42: with line"),
        (BUG, "<script>: bug"),
    ]


def test_xlogm_passes_unfiltered_methods(logs: pytest.LogCaptureFixture) -> None:
    core = load({"methods_filter": 32})  # REGISTER only
    ctx = new_ctx(core)
    assert core.cfg_functions["xlogm"].func(ctx, "L_INFO", "kept") == 1
    assert records(logs) == [(logging.INFO, "<script>: kept")]


def test_entry_point_installed() -> None:
    from kemi_core.testing import installed_modules

    entry = installed_modules().get("xlog")
    assert entry is not None and entry.dist == "kemi-xlog"
