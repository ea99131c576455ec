"""The compiled forms of the usual REGISTER's memoised request, its location change, its
200's Contact value and the whole usual save
(_fast.c's "registrar's usual REGISTER" section), for kemi_usrloc and kemi_registrar: None
when _fast is not built or KEMI_SIP_PURE is set (the plugins' Python forms then run)."""

from __future__ import annotations

from kemi_core.sip.syntax import PURE_PYTHON

try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import (
        reg_contact_value,
        reg_known_request,
        reg_ok_headers,
        reg_one,
        reg_save_usual,
        shared_never_update,
        ul_change_one,
    )
except ImportError:
    ul_change_one = reg_one = reg_contact_value = reg_known_request = reg_ok_headers = None
    shared_never_update = reg_save_usual = None  # (SharedTable.update_never; usual.py)
