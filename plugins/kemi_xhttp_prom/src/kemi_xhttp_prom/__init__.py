"""xhttp_prom.so: kemi's statistics for Prometheus, ``GET /metrics`` in the text format.

Kamailio's xhttp_prom answers on the SIP TCP listener through xhttp and an
``event_route[xhttp:request]`` calling ``prom_dispatch()``. kemi serves ``/metrics`` from the
main process on its own TCP address, off the SIP path: ``modparam("xhttp_prom", "listen",
"tcp:127.0.0.1:9090")``. Kamailio's parameters mean what they mean there: ``xhttp_prom_stats``
picks the statistics ("all", "group:", a name; "" none, the default), ``xhttp_prom_beginning``
the name prefix ("kamailio_"): ``core:rcv_requests`` is ``kamailio_core_rcv_requests``. Each
process's CPU time and restarts are always there (``kamailio_process_cpu_seconds_total{rank=..}``).
User-defined metrics (prom_counter, prom_gauge, prom_histogram) are not offered.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import Core, ModuleError, hookimpl, prometheus_text, serve_metrics

log = logging.getLogger("kemi.xhttp_prom")

MODULE = "xhttp_prom"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "listen", str, "tcp:127.0.0.1:9090",
                       doc="kemi: where /metrics is served, tcp:host:port")
    core.declare_param(MODULE, "xhttp_prom_stats", str, "",
                       doc='statistics shown: "all", "group:", a name; "" for none')
    core.declare_param(MODULE, "xhttp_prom_beginning", str, "kamailio_",
                       doc="prefix of every metric name")
    core.declare_param(MODULE, "xhttp_prom_buf_size", int, 0, doc="accepted for compatibility")
    core.declare_param(MODULE, "xhttp_prom_timeout", int, 60, doc="accepted for compatibility")
    for name in ("prom_counter", "prom_gauge", "prom_histogram"):
        core.declare_param(MODULE, name, str, multi=True,
                           doc="accepted; user-defined metrics are not offered by kemi")


def listen_address(spec: str) -> tuple[str, int]:
    """``tcp:host:port`` or ``host:port`` -> (host, port); ValueError saying why."""
    rest = spec[4:] if spec.startswith("tcp:") else spec
    host, _, port = rest.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"xhttp_prom: listen {spec!r}: expected tcp:host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


@hookimpl
def mod_init(core: Core) -> None:
    try:
        host, port = listen_address(str(core.modparam(MODULE, "listen")))
    except ValueError as exc:
        raise ModuleError(str(exc))
    if core.modparam(MODULE, "prom_counter") or core.modparam(MODULE, "prom_gauge") or \
            core.modparam(MODULE, "prom_histogram"):
        log.warning("xhttp_prom: user-defined metrics (prom_counter/gauge/histogram) are not "
                    "offered; the server's statistics are")
    selection = str(core.modparam(MODULE, "xhttp_prom_stats"))
    prefix = str(core.modparam(MODULE, "xhttp_prom_beginning"))

    def start(loop: Any) -> None:
        def render() -> str:
            return prometheus_text(core, selection, prefix)

        if loop.is_running():
            loop.create_task(serve_metrics(host, port, render))
        else:  # the main process starts its loop after these hooks: bind now, fail loudly
            loop.run_until_complete(serve_metrics(host, port, render))

    core.main_loop_hooks.append(start)
