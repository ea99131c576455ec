"""The proxy/registrar of kemi_websocket.webrtc_cfg on kemi and on Kamailio 5.6, one server per
kind for a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kemi_core.testing import KAMAILIO_MPATH, kamailio_available
from kemi_websocket.testing import WebrtcServer
from kemi_websocket.webrtc_cfg import KAMAILIO_MODULES


@pytest.fixture(scope="module", params=["kemi", "kamailio"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[WebrtcServer]:
    kind = request.param
    if kind == "kamailio" and not kamailio_available(*KAMAILIO_MODULES):
        pytest.skip("Kamailio 5.6 with its tls, websocket, xhttp and Lua modules is not installed")
    base = tmp_path_factory.mktemp(f"webrtc-{kind}")
    with WebrtcServer(kind, base, kamailio_mpath=KAMAILIO_MPATH) as srv:
        yield srv
