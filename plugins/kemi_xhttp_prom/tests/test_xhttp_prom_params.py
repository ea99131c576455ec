"""xhttp_prom's parameters: where /metrics listens, and a bad address refused at start."""

from __future__ import annotations

import pytest

from kemi_core.api import Core, CoreConfig, ModuleError
from kemi_xhttp_prom import listen_address, mod_init, mod_register


def test_listen_forms() -> None:
    assert listen_address("tcp:127.0.0.1:9090") == ("127.0.0.1", 9090)
    assert listen_address("127.0.0.2:19090") == ("127.0.0.2", 19090)
    assert listen_address("tcp::9090") == ("0.0.0.0", 9090)
    for bad in ("tcp:127.0.0.1", "tcp:127.0.0.1:0", "tcp:x:99999"):
        with pytest.raises(ValueError, match="expected tcp:host:port"):
            listen_address(bad)


def test_bad_listen_refused_and_a_good_one_hooks_the_main_loop() -> None:
    core = Core(CoreConfig())
    core.loaded_modules.append("xhttp_prom")
    mod_register(core)
    core.set_param("xhttp_prom", "listen", "tcp:nowhere")
    with pytest.raises(ModuleError, match="xhttp_prom: listen"):
        mod_init(core)
    core.set_param("xhttp_prom", "listen", "tcp:127.0.0.1:9090")
    mod_init(core)
    assert len(core.main_loop_hooks) == 1
