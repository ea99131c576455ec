"""registrar's module parameters (Kamailio 5.6's names and defaults), read once at mod_init."""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.api import Core

MODULE = "registrar"

#: (name, kind, default, doc) for every parameter kemi acts on.
PARAMS: tuple[tuple[str, type, object, str], ...] = (
    ("default_expires", int, 3600, "expires when the REGISTER gives none"),
    ("default_expires_range", int, 0, "percent of default_expires taken off at random"),
    ("expires_range", int, 0, "percent of a requested expires taken off at random"),
    ("min_expires", int, 60, "shortest expires accepted (0: no check)"),
    ("min_expires_mode", int, 0, "0: raise to min_expires; 1: answer 423 Interval Too Brief"),
    ("max_expires", int, 0, "longest expires accepted, longer ones are cut (0: no check)"),
    ("default_q", int, -1, "q (in thousandths) of a contact without one; -1: unspecified"),
    ("realm_prefix", str, "", "prefix stripped from the AOR's domain"),
    ("append_branches", int, 1, "lookup adds every other contact as a branch"),
    ("case_sensitive", int, 0, "AORs compared and stored case-sensitively"),
    ("received_avp", str, "", "AVP holding the received URI to store (nathelper)"),
    ("received_param", str, "received", "Contact parameter naming it in the 200"),
    ("max_contacts", int, 0, "contacts per AOR (0: no limit)"),
    ("retry_after", int, 0, "Retry-After of a 503 (0: none)"),
    ("sock_flag", int, -1, "message flag: take the socket from the sock_hdr_name header"),
    ("sock_hdr_name", str, "", "header holding the socket (proto:ip:port)"),
    ("sock_mode", int, 0, "accepted (advertised addresses are not stored)"),
    ("method_filtering", int, 0, "lookup keeps contacts whose methods allow the request's"),
    ("use_path", int, 0, "store Path headers (RFC 3327)"),
    ("path_mode", int, 2, "0 store, 1 echo if Supported: path, 2 require Supported: path"),
    ("path_use_received", int, 0, "received= of the first Path URI is the received address"),
    ("path_check_local", int, 0, "lookup skips a first Path hop that is this server"),
    ("xavp_cfg", str, "", "xavp class of run-time settings (q, expires, max_contacts ...)"),
    ("xavp_rcd", str, "", "xavp class filled with the record of each contact looked up"),
    ("xavp_rcd_mask", int, 0, "fields left out of xavp_rcd"),
    ("gruu_enabled", int, 1, "keep +sip.instance and answer GRUUs"),
    ("outbound_mode", int, 0, "accepted; RFC 5626 outbound is not implemented"),
    ("regid_mode", int, 0, "accepted (reg-id is always kept)"),
    ("flow_timer", int, 0, "Flow-Timer header in the 200 (0: none)"),
    ("contact_max_size", int, 512, "longest contact URI accepted"),
    ("event_callback", str, "", "KEMI function run for usrloc:contact-expired"),
    ("lookup_filter_mode", int, 0, "1: lookup keeps contacts with a branch flag of rlf_bflags"),
    ("use_expired_contacts", int, 0, "lookup also uses expired contacts"),
    ("reg_callid_avp", str, "", "obsolete in Kamailio; accepted"),
    # kemi's own: RFC 3261 10.3 says a registrar SHOULD send Date; Kamailio 5.6 does not.
    ("date_header", int, 1, "add a Date header to the 200 of save() (kemi)"),
)


@attrs.frozen
class RegParams:
    default_expires: int
    default_expires_range: int
    expires_range: int
    min_expires: int
    min_expires_mode: int
    max_expires: int
    default_q: int
    realm_prefix: str
    append_branches: bool
    case_sensitive: bool
    received_avp: str
    received_param: str
    max_contacts: int
    retry_after: int
    sock_flag: int
    sock_hdr_name: str
    method_filtering: bool
    use_path: bool
    path_mode: int
    path_use_received: bool
    path_check_local: bool
    xavp_cfg: str
    xavp_rcd: str
    xavp_rcd_mask: int
    gruu_enabled: bool
    flow_timer: int
    contact_max_size: int
    event_callback: str
    lookup_filter_mode: int
    use_expired_contacts: bool
    date_header: bool


def declare(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)


def read(core: Core) -> RegParams:
    fields = {f.name: f.type for f in attrs.fields(RegParams)}
    values: dict[str, Any] = {}
    for name, kind, _default, _doc in PARAMS:
        if name not in fields:
            continue
        value = core.modparam(MODULE, name)
        values[name] = bool(value) if fields[name] in ("bool", bool) else kind(value)
    return RegParams(**values)
