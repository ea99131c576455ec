"""rr's URI helpers: the memos (route_params, is_own) give the plain answers."""

from __future__ import annotations

import kemi_rr
from kemi_core.api import ListenAddr
from kemi_core.sip import parse_name_addr, parse_uri
from kemi_core.testing import offline_core
from kemi_rr import uris
from kemi_rr.uris import default_port, is_own, params_text, route_params, uri_proto

VALUES = ["<sip:127.0.0.1;lr;ftag=a1;nat=yes>", "<sip:127.0.0.1:5062;transport=tcp;r2=on;lr=on>",
          "<sip:p.example.com;LR;Ftag=X>", "<sip:u@127.0.0.1>", "<sips:[::1]:5061;lr;a=1;a=2>"]


def test_route_params_as_params_text_also_when_remembered() -> None:
    uris._ROUTE_PARAMS.clear()
    for _ in range(2):
        for value in VALUES:
            na = parse_name_addr(value)
            assert na.uri is not None
            assert route_params(na.uri_text, na.uri) == params_text(na.uri)
    assert len(uris._ROUTE_PARAMS) == len(VALUES)


def test_route_params_memo_is_bounded() -> None:
    uris._ROUTE_PARAMS.clear()
    for i in range(uris._ROUTE_PARAMS_MAX + 10):
        na = parse_name_addr(f"<sip:127.0.0.1;lr;ftag={i}>")
        assert na.uri is not None
        assert route_params(na.uri_text, na.uri) == f";lr;ftag={i}"
    assert len(uris._ROUTE_PARAMS) <= uris._ROUTE_PARAMS_MAX


def test_is_own_remembered_per_core_names() -> None:
    """The memo answers as core.is_myself does, and another core's names are asked anew."""
    a, _ = offline_core(("rr", kemi_rr))
    b, _ = offline_core(("rr", kemi_rr))
    b.config.listen.append(ListenAddr("udp", "127.0.0.1", 5999))
    texts = ["sip:127.0.0.1;lr", "sip:127.0.0.1:5060;lr", "sip:127.0.0.1:5999;lr",
             "sip:10.1.2.3;lr", "sips:127.0.0.1;lr", "sip:127.0.0.1;transport=tcp;lr",
             # the memo's key holds the scheme and ;transport= as written: these differ
             "sips:127.0.0.1:5060;lr", "sip:127.0.0.1;transport=TLS;lr",
             "sip:127.0.0.1;transport=tls;lr", "sip:127.0.0.1:5061;transport=tls;lr"]
    for core in (a, b, a, b):
        for text in texts:
            uri = parse_uri(text)
            port = uri.port if uri.port is not None else default_port(uri_proto(uri))
            assert is_own(core, uri) == core.is_myself(uri.host, port), (text, core)
    # a scheme that is not sip/sips is never ours, whatever its host and port
    assert not is_own(a, parse_uri("sip:127.0.0.1:5060").with_(scheme="tel"))
    assert is_own(a, parse_uri("sip:127.0.0.1:5060"))
    assert is_own(b, parse_uri("sip:127.0.0.1:5999"))
    assert not is_own(a, parse_uri("sip:127.0.0.1:5999"))
