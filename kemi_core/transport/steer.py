"""The kernel steers each UDP reply to the worker holding its transaction (several workers).

The workers share every UDP listen port (SO_REUSEPORT) and send from it, as Kamailio sends
from its listen socket; the kernel picks one socket of the port's group per datagram by a hash
of the sender's address, so a reply could land in any worker. A classic BPF program attached
to the group (``SO_ATTACH_REUSEPORT_CBPF``, no privilege needed) picks instead: for a datagram
that starts ``SIP/2.0 `` (a reply) it finds the first ``z9hG4bK`` (the top Via's branch, ours)
and returns the index its rank mark names (``forwarding.branch_rank``: the rank minus one,
the order in which the main process bound the ranks' sockets, ``RankSockets``). Anything else
(a request, no mark within ``WINDOW`` bytes, a packet too short for the block it is in)
returns an index beyond the group, and the kernel falls back to its hash. What the program
does not steer reaches its worker through the mailbox (``WorkerEndpoints.steer_reply``).

cBPF has no loops: the scan is unrolled, four instructions a position (4096 at most in all),
and a load beyond the packet would end the program with 0 (socket 0), so the packet's length
is checked before each block of positions.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger("kemi.transport")

#: linux/asm-generic/socket.h
SO_ATTACH_REUSEPORT_CBPF = 51

# the classic BPF instruction classes and fields (linux/filter.h)
_LD, _LDX, _ST, _ALU, _JMP, _RET, _MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
_W, _B = 0x00, 0x10
_ABS, _IND, _MEM, _LEN, _IMM = 0x20, 0x40, 0x60, 0x80, 0x00
_SUB, _MUL, _ADD = 0x10, 0x20, 0x00
_X = 0x08
_JA, _JEQ, _JGE = 0x00, 0x10, 0x30
_A = 0x10

#: the index returned for "not steered": beyond any group, so the kernel hashes
MISS = 0xFFFFFFFF
#: where the scan for the cookie starts (after "SIP/2.0 ") and how many positions it tries at
#: most: the kernel refuses a program larger (once converted) than net.core.optmem_max (128
#: KiB since Linux 6.9: 954 positions; 20 KiB before), so smaller windows are tried in turn
START = 8
WINDOWS = (940, 470, 230, 110)
#: positions per length check
BLOCK = 64
MAX_INSNS = 4096

Insn = tuple[int, int, int, int]


def _word(text: bytes) -> int:
    return int.from_bytes(text, "big")


def program(window: int = WINDOWS[0], start: int = START) -> list[Insn]:
    """The steering program, as (code, jt, jf, k) instructions."""
    out: list[Insn] = []

    def miss_unless(code: int, k: int) -> None:
        """``if not (A <op> k): return MISS``."""
        out.append((code, 1, 0, k))
        out.append((_RET, 0, 0, MISS))

    out.append((_LD | _W | _LEN, 0, 0, 0))
    miss_unless(_JMP | _JGE, START + 1)
    out.append((_LD | _W | _ABS, 0, 0, 0))
    miss_unless(_JMP | _JEQ, _word(b"SIP/"))
    out.append((_LD | _W | _ABS, 0, 0, 4))
    miss_unless(_JMP | _JEQ, _word(b"2.0 "))
    jumps: list[int] = []  # the "found" jumps, pointed at the handler once it is placed
    end = start + window
    for block in range(start, end, BLOCK):
        last = min(block + BLOCK, end) - 1
        out.append((_LD | _W | _LEN, 0, 0, 0))
        miss_unless(_JMP | _JGE, last + 9)  # the handler reads up to 9 bytes from a position
        for pos in range(block, last + 1):
            out.append((_LD | _W | _ABS, 0, 0, pos))
            out.append((_JMP | _JEQ, 0, 2, _word(b"z9hG")))
            out.append((_LDX | _W | _IMM, 0, 0, pos))
            jumps.append(len(out))
            out.append((_JMP | _JA, 0, 0, 0))
    out.append((_RET, 0, 0, MISS))  # no cookie in the window
    handler = len(out)
    for at in jumps:
        out[at] = (_JMP | _JA, 0, 0, handler - at - 1)
    out.append((_LD | _W | _IND, 0, 0, 3))
    miss_unless(_JMP | _JEQ, _word(b"G4bK"))
    out.append((_LD | _B | _IND, 0, 0, 7))  # the mark's first letter: A..Z -> 0..25
    out.append((_ALU | _SUB, 0, 0, ord("A")))
    out.append((_JMP | _JGE, 0, 1, 26))
    out.append((_RET, 0, 0, MISS))
    out.append((_ALU | _MUL, 0, 0, 26))
    out.append((_ST, 0, 0, 0))
    out.append((_LD | _B | _IND, 0, 0, 8))  # its second letter
    out.append((_ALU | _SUB, 0, 0, ord("A")))
    out.append((_JMP | _JGE, 0, 1, 26))
    out.append((_RET, 0, 0, MISS))
    out.append((_LDX | _MEM, 0, 0, 0))
    out.append((_ALU | _ADD | _X, 0, 0, 0))
    out.append((_RET | _A, 0, 0, 0))
    assert len(out) <= MAX_INSNS, len(out)
    return out


def attach(sock: socket.socket, code: list[Insn]) -> None:
    """Attach ``code`` to the reuseport group ``sock`` is bound in (OSError when the kernel
    refuses it)."""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in code)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(code), ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def steer_replies(groups: list[socket.socket]) -> bool:
    """Attach the program to each UDP listen port's group (one socket of each); False, and
    logged, when the kernel refuses: replies then reach their workers by the mailbox."""
    for sock in groups:
        for window in WINDOWS:
            try:
                attach(sock, program(window))
                break
            except OSError as exc:
                failed = exc
        else:
            log.info("UDP reply steering by the kernel is not available (%s): replies that "
                     "reach another worker are handed over to theirs", failed)
            return False
    return True
