"""sl's statistics under Kamailio's names (``sl:200_replies`` ... ``sl:sent_replies``).

Codes Kamailio counts one by one have their own counter; any other code counts in its class
(``sl:4xx_replies`` holds the 4xx replies that are not 400, 401, 403, 404, 407, 408 or 483),
and a code outside 1xx-6xx in ``sl:xxx_replies``.
"""

from __future__ import annotations

from kemi_core.api import Core, Counter

CODES = (200, 202, 300, 301, 302, 400, 401, 403, 404, 407, 408, 483, 500)


class SlStats:
    def __init__(self, core: Core) -> None:
        c = core.counter
        self.by_code = {code: c("sl", f"{code}_replies", f"stateless {code} replies sent")
                        for code in CODES}
        self.by_class = [c("sl", f"{k}xx_replies", f"stateless {k}xx replies sent (other codes)")
                         for k in range(1, 7)]
        self.other = c("sl", "xxx_replies", "stateless replies sent with a code beyond 6xx")
        self.sent = c("sl", "sent_replies", "stateless replies sent")
        self.sent_err = c("sl", "sent_err_replies", "error replies sent by sl_reply_error")
        self.failures = c("sl", "failures", "stateless replies that could not be sent")
        self.received_acks = c("sl", "received_ACKs", "ACKs to our own replies, absorbed")
        # every reply sent counts in exactly one of these: the total is their sum, so a reply
        # costs one increment (core.counter's sum_of)
        self.sent.sum_of([*self.by_code.values(), *self.by_class, self.other])
        #: the counter of each code a reply can have (100-699), so that a reply sent costs
        #: one dict lookup and one increment
        self.for_code = {code: self.counter_of(code) for code in range(100, 700)}

    def counter_of(self, code: int) -> Counter:
        """The counter a reply with ``code`` counts in: its own, else its class's, else
        ``sl:xxx_replies``."""
        by_code = self.by_code.get(code)
        if by_code is not None:
            return by_code
        if 1 <= code // 100 <= 6:
            return self.by_class[code // 100 - 1]
        return self.other

    def replied(self, code: int) -> None:
        counter = self.for_code.get(code)
        (counter if counter is not None else self.counter_of(code)).inc()

    def rpc_stats(self) -> dict[str, int]:
        """sl.stats as Kamailio prints it: 200, 202, 2xx, 300 ... 4xx, 500, 5xx, 6xx, xxx."""
        out = {str(code): c.value for code, c in self.by_code.items()}
        out.update({f"{k}xx": self.by_class[k - 1].value for k in range(2, 7)})
        out["xxx"] = self.other.value
        return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0].endswith("xx"), kv[0])))
