"""The auth module's parameters (Kamailio's names and defaults), read once in mod_init."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import attrs

from kemi_auth.digest import canonical_algorithm
from kemi_core.api import ModuleError
from kemi_core.sip import SipParseError

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_core.sip import SipMsg

MODULE = "auth"

#: (name, kind, default, doc) of every modparam, as Kamailio 5.6 documents them.
PARAMS: tuple[tuple[str, type, Any, str], ...] = (
    ("secret", str, "", "secret the nonces are signed with; random by default (then nonces "
                        "die with a restart), set it to share nonces between servers"),
    ("nonce_expire", int, 300, "seconds a nonce stays good; an older one is stale"),
    ("nonce_auth_max_drift", int, 3, "seconds a nonce may seem to come from the future"),
    ("qop", str, "", "accepted (auth, auth-int or empty); as in Kamailio 5.6 the challenge "
                     "functions offer qop by their flags only"),
    ("nonce_count", int, 0, "1: a response's nc must grow for each use of its nonce"),
    ("one_time_nonce", int, 0, "1: a nonce is good for one response only"),
    ("auth_checks_register", int, 0, "nonce bound to the REGISTER: 1 R-URI, 2 Call-ID, "
                                     "4 From tag, 8 source IP"),
    ("auth_checks_no_dlg", int, 0, "the same bits for requests outside a dialog"),
    ("auth_checks_in_dlg", int, 0, "the same bits for requests inside a dialog"),
    ("force_stateless_reply", int, 0, "1: challenges always go out statelessly"),
    ("realm_prefix", str, "", "prefix removed from realms (e.g. 'sip.')"),
    ("use_domain", int, 0, "1: pv_auth_check compares domains too"),
    ("algorithm", str, "", "MD5 (default), SHA-256, SHA-512-256 or SHA-512; named in the "
                           "challenges when set"),
    ("add_authinfo_hdr", int, 0, "1: Authentication-Info on the reply to a verified request"),
    # Kamailio sizes its in-flight nonce arrays with these; the shared store needs no size.
    ("nc_array_size", int, 1048576, "accepted for compatibility (no fixed array here)"),
    ("nc_array_order", int, 20, "accepted for compatibility"),
    ("otn_in_flight_no", int, 1048576, "accepted for compatibility"),
    ("otn_in_flight_order", int, 20, "accepted for compatibility"),
    ("nid_pool_no", int, 1, "accepted for compatibility"),
)


@attrs.frozen
class AuthSettings:
    secret: str = ""
    nonce_expire: int = 300
    max_drift: int = 3
    qop: str = ""
    nonce_count: bool = False
    one_time_nonce: bool = False
    checks_register: int = 0
    checks_no_dlg: int = 0
    checks_in_dlg: int = 0
    force_stateless_reply: bool = False
    realm_prefix: str = ""
    use_domain: bool = False
    algorithm: str = "MD5"
    #: whether challenges name the algorithm (Kamailio names it only when it was set)
    algorithm_param: bool = False
    add_authinfo_hdr: bool = False

    @classmethod
    def from_core(cls, core: Core) -> AuthSettings:
        def p(name: str) -> Any:
            return core.modparam(MODULE, name)

        algorithm = canonical_algorithm(p("algorithm"))
        if algorithm is None:
            raise ModuleError(f"auth: unknown algorithm {p('algorithm')!r} (MD5, SHA-256, "
                             "SHA-512-256 or SHA-512)")
        qop = str(p("qop")).strip().lower()
        if qop not in ("", "auth", "auth-int"):
            raise ModuleError(f"auth: qop must be auth, auth-int or empty, not {qop!r}")
        if int(p("nonce_expire")) <= 0:
            raise ModuleError("auth: nonce_expire must be positive")
        return cls(
            secret=p("secret") or secrets.token_urlsafe(32),
            nonce_expire=int(p("nonce_expire")), max_drift=int(p("nonce_auth_max_drift")),
            qop=qop, nonce_count=bool(p("nonce_count")), one_time_nonce=bool(p("one_time_nonce")),
            checks_register=int(p("auth_checks_register")) & 15,
            checks_no_dlg=int(p("auth_checks_no_dlg")) & 15,
            checks_in_dlg=int(p("auth_checks_in_dlg")) & 15,
            force_stateless_reply=bool(p("force_stateless_reply")),
            realm_prefix=p("realm_prefix"), use_domain=bool(p("use_domain")),
            algorithm=algorithm, algorithm_param=bool(p("algorithm")),
            add_authinfo_hdr=bool(p("add_authinfo_hdr")))

    def checks_for(self, msg: SipMsg) -> int:
        """The auth_checks_* mask for a request (REGISTER, outside or inside a dialog)."""
        if msg.method == "REGISTER":
            return self.checks_register
        if not self.checks_no_dlg and not self.checks_in_dlg:
            return 0
        try:
            in_dialog = msg.to.tag is not None
        except SipParseError:
            in_dialog = False
        return self.checks_in_dlg if in_dialog else self.checks_no_dlg
