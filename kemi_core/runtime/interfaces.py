"""The host's IP addresses, for listening everywhere when kamailio.cfg names no ``listen``.

Read with the C library's getifaddrs (through ctypes: the standard library has no portable
call for it). Addresses of interfaces that are up, in the kernel's order, loopback included, as
Kamailio binds them; IPv6 ones (link-local excepted) only when asked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import logging
import socket

log = logging.getLogger("kemi.interfaces")

_IFF_UP = 0x1


class _Sockaddr(ctypes.Structure):
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 14)]


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("sin_family", ctypes.c_ushort), ("sin_port", ctypes.c_uint16),
                ("sin_addr", ctypes.c_ubyte * 4), ("sin_zero", ctypes.c_ubyte * 8)]


class _SockaddrIn6(ctypes.Structure):
    _fields_ = [("sin6_family", ctypes.c_ushort), ("sin6_port", ctypes.c_uint16),
                ("sin6_flowinfo", ctypes.c_uint32), ("sin6_addr", ctypes.c_ubyte * 16),
                ("sin6_scope_id", ctypes.c_uint32)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [("ifa_next", ctypes.POINTER(_Ifaddrs)), ("ifa_name", ctypes.c_char_p),
                     ("ifa_flags", ctypes.c_uint), ("ifa_addr", ctypes.POINTER(_Sockaddr)),
                     ("ifa_netmask", ctypes.POINTER(_Sockaddr)),
                     ("ifa_ifu", ctypes.POINTER(_Sockaddr)), ("ifa_data", ctypes.c_void_p)]


def local_addresses(ipv6: bool = False) -> list[str]:
    """IPv4 (and with ``ipv6`` global IPv6) addresses of the interfaces that are up."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        log.error("getifaddrs failed: errno %d", ctypes.get_errno())
        return []
    out: list[str] = []
    try:
        node = head
        while node:
            ifa = node.contents
            node = ifa.ifa_next
            if not ifa.ifa_addr or not ifa.ifa_flags & _IFF_UP:
                continue
            family = ifa.ifa_addr.contents.sa_family
            if family == socket.AF_INET:
                sin = ctypes.cast(ifa.ifa_addr, ctypes.POINTER(_SockaddrIn)).contents
                addr = str(ipaddress.IPv4Address(bytes(sin.sin_addr)))
            elif family == socket.AF_INET6 and ipv6:
                sin6 = ctypes.cast(ifa.ifa_addr, ctypes.POINTER(_SockaddrIn6)).contents
                ip6 = ipaddress.IPv6Address(bytes(sin6.sin6_addr))
                if ip6.is_link_local:
                    continue
                addr = str(ip6)
            else:
                continue
            if addr not in out:
                out.append(addr)
    finally:
        libc.freeifaddrs(head)
    return out
