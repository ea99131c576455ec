"""rr's URI helpers: route_params (the memo) gives params_text's answer."""

from __future__ import annotations

from kemi_core.sip import parse_name_addr
from kemi_rr import uris
from kemi_rr.uris import params_text, route_params

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
