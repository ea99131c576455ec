"""registrar's statistics, named as Kamailio 5.6 names them (``kamcmd stats.get_statistics
registrar:``): ``accepted_regs`` and ``rejected_regs`` (REGISTERs save() answered with
success or refused, counted in every worker), and the settings Kamailio publishes there too
(``default_expire``, ``default_expires_range``, ``expires_range``, ``max_contacts``,
``max_expires``)."""

from __future__ import annotations

from collections.abc import Callable

from kemi_core.api import Core, Counter
from kemi_registrar.params import RegParams

GROUP = "registrar"


class RegStats:
    __slots__ = ("accepted", "rejected")

    def __init__(self, core: Core) -> None:
        self.accepted: Counter = core.counter(GROUP, "accepted_regs",
                                              "REGISTERs save() accepted")
        self.rejected: Counter = core.counter(GROUP, "rejected_regs",
                                              "REGISTERs save() refused")


def publish_settings(core: Core, p: RegParams) -> None:
    """The parameters Kamailio shows among registrar's statistics (read in the main process)."""
    for name, value in (("default_expire", p.default_expires),
                        ("default_expires_range", p.default_expires_range),
                        ("expires_range", p.expires_range), ("max_contacts", p.max_contacts),
                        ("max_expires", p.max_expires)):
        core.gauge(GROUP, name, _constant(value), doc=f"the {name} setting")


def _constant(value: int) -> Callable[[], int]:
    return lambda: value
