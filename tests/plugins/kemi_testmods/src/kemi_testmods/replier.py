"""Engine ``replier`` (module ``app_replier``): answers every request 200 OK, no script.

``modparam("app_replier", "reason", "...")`` sets the reason phrase, so tests can tell
configs apart; ``load_delay_ms`` makes loading (in each worker, before it binds its sockets)
as slow as a big script's, so tests can see that start-up waits for it. It implements the
Engine protocol with nothing but public kemi APIs.
"""

from __future__ import annotations

import time

from kemi_core.api import REQUEST_ROUTE, Core, EngineSpec, MsgContext, ScriptError, hookimpl
from kemi_core.sip import build_reply


class ReplierEngine:
    name = "replier"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.reason = "OK"

    def load(self) -> None:
        self.reason = str(self.core.modparam("app_replier", "reason"))
        time.sleep(int(self.core.modparam("app_replier", "load_delay_ms")) / 1000)

    def has_route(self, name: str) -> bool:
        return name == REQUEST_ROUTE

    def run(self, name: str, ctx: MsgContext) -> int:
        if name != REQUEST_ROUTE:
            raise ScriptError(f"replier engine has no route {name}")
        if ctx.msg.method == "ACK":
            return 1
        data = build_reply(ctx.msg, 200, self.reason, to_tag="replier1")
        return 1 if self.core.send_reply(ctx, data) else -1

    def reload(self) -> None:
        self.load()


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param("app_replier", "reason", str, "OK")
    core.declare_param("app_replier", "load_delay_ms", int, 0)


@hookimpl
def sr_kemi_eng_register() -> list[EngineSpec]:
    return [EngineSpec("replier", ReplierEngine, "answers 200 to every request")]
