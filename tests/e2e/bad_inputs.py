"""Bad SIP input for the robustness tests: hand-picked cases and seeded mutations.

Every case is bytes to send as one datagram or on one TCP connection. The mutations are
deterministic for a seed, so a failure can be replayed.
"""

from __future__ import annotations

import random

GOOD_HEADERS = [
    b"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{n}x;rport",
    b"From: \"Alice\" <sip:alice@127.0.0.1>;tag=f{n}",
    b"To: <sip:bob@127.0.0.1>",
    b"Call-ID: c{n}@127.0.0.1",
    b"CSeq: 1 {method}",
    b"Contact: <sip:alice@127.0.0.1:{lport}>;expires=60",
    b"Max-Forwards: 70",
    b"Record-Route: <sip:127.0.0.1:{lport};lr>",
    b"Route: <sip:127.0.0.1:{port};lr>",
    b"User-Agent: fuzz",
    b"Expires: 60",
    b"X-Data: plain",
]


def message(port: int, lport: int, n: int, method: bytes = b"OPTIONS",
            headers: list[bytes] | None = None, body: bytes = b"",
            first: bytes | None = None) -> bytes:
    hdrs = [h.replace(b"{lport}", str(lport).encode()).replace(b"{port}", str(port).encode())
            .replace(b"{n}", str(n).encode()).replace(b"{method}", method)
            for h in (headers if headers is not None else GOOD_HEADERS)]
    if first is None:
        first = method + b" sip:bob@127.0.0.1:" + str(port).encode() + b" SIP/2.0"
    head = b"\r\n".join([first, *hdrs, b"Content-Length: " + str(len(body)).encode()])
    return head + b"\r\n\r\n" + body


def replace_header(name: bytes, value: bytes) -> list[bytes]:
    out = [h for h in GOOD_HEADERS if not h.lower().startswith(name.lower() + b":")]
    return [*out, name + b": " + value]


#: (header, bad value) pairs the parsers must survive
BAD_VALUES: list[tuple[bytes, bytes]] = [
    (b"Via", b"garbage"),
    (b"Via", b"SIP/2.0/UDP"),
    (b"Via", b"SIP/2.0/UDP 127.0.0.1:99999999;branch=z9hG4bK1"),
    (b"Via", b"SIP/2.0/UDP [::1:5060;branch=x"),
    (b"Via", b"SIP/2.0/XYZ 127.0.0.1;rport=abc;received=\xff\xfe"),
    (b"Via", b"SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1, garbage, ,"),
    (b"From", b"garbage <<<"),
    (b"From", b"<sip:\xff\xfe@127.0.0.1>;tag=\xc3"),
    (b"From", b""),
    (b"To", b"<sip:bob@127.0.0.1;tag=a;tag=b"),
    (b"To", b"\"unterminated <sip:x@y>"),
    (b"Call-ID", b"\xff\xfe\x80invalid-utf8@host"),
    (b"Call-ID", b""),
    (b"CSeq", b"one OPTIONS"),
    (b"CSeq", b"99999999999999999999999 OPTIONS"),
    (b"CSeq", b"-1 OPTIONS"),
    (b"CSeq", b"1"),
    (b"Max-Forwards", b"abc"),
    (b"Max-Forwards", b"-5"),
    (b"Max-Forwards", b"99999999999999999999"),
    (b"Max-Forwards", b"0"),
    (b"Contact", b"<sip:\x00@127.0.0.1>"),
    (b"Contact", b"*"),
    (b"Contact", b"<sip:a@b>;expires=notanumber;q=9.9.9"),
    (b"Contact", b"garbage,,<"),
    (b"Route", b"<sip:127.0.0.1;lr"),
    (b"Route", b"garbage"),
    (b"Route", b"<sips:[::1]:99999;lr>"),
    (b"Record-Route", b"<>"),
    (b"Record-Route", b"\xff"),
    (b"Expires", b"forever"),
    (b"Content-Type", b"application/sdp\xff"),
    (b"X-Data", b"\xff\xfe\xfd bytes that are not UTF-8 \xc3\x28"),
    (b"X-Data", b"A" * 60000),
    (b"Authorization", b"Digest username=\"a\", realm=, nonce=\"\xff\", uri=\"sip:x\""),
    (b"Accept", b"\x00\x00\x00"),
    (b"Event", b";;;;"),
    (b"Subscription-State", b"active;expires=-1"),
    (b"Refer-To", b"<sip:a@b?Replaces=%ZZ>"),
    (b"P-Asserted-Identity", b"<tel:+\xff>"),
]


def hand_picked(port: int, lport: int) -> list[tuple[str, bytes]]:
    """Named bad messages: each a single datagram / TCP write."""
    out: list[tuple[str, bytes]] = []
    for i, (name, value) in enumerate(BAD_VALUES):
        for method in (b"OPTIONS", b"INVITE", b"REGISTER", b"ACK", b"CANCEL", b"BYE"):
            out.append((f"{name.decode()}={value[:20]!r} {method.decode()}",
                        message(port, lport, i, method, replace_header(name, value))))
    first_lines = [b"OPTIONS sip:bob@127.0.0.1 SIP/3.0", b"OPTIONS  SIP/2.0",
                   b"OPTIONS sip:\xff\xfe@127.0.0.1 SIP/2.0", b"OPTIONS garbage SIP/2.0",
                   b"INVITE tel:+1234 SIP/2.0", b"INVITE sip:[::1 SIP/2.0",
                   b"SIP/2.0 200 OK", b"SIP/2.0 999 Whatever", b"SIP/2.0 abc OK",
                   b"SIP/2.0 180", b"\xff\xfe\xfd", b"GET / HTTP/1.1",
                   b"OPTIONS sip:bob@127.0.0.1:99999 SIP/2.0",
                   b"FOO\x00BAR sip:x@y SIP/2.0", b"INVITE sips:bob@127.0.0.1;transport=tls SIP/2.0"]
    for i, first in enumerate(first_lines):
        method = first.split(b" ", 1)[0] if not first.startswith(b"SIP/") else b"INVITE"
        out.append((f"first line {first[:30]!r}", message(port, lport, 1000 + i, method,
                                                          first=first)))
    good = message(port, lport, 2000)
    out += [
        ("no Call-ID", message(port, lport, 2001, headers=[h for h in GOOD_HEADERS
                                                           if not h.startswith(b"Call-ID")])),
        ("no headers", b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"),
        ("body longer than Content-Length", good[:-4] + b"\r\n\r\nextra body"),
        ("Content-Length too big", good.replace(b"Content-Length: 0", b"Content-Length: 999")),
        ("Content-Length negative", good.replace(b"Content-Length: 0", b"Content-Length: -1")),
        ("Content-Length garbage", good.replace(b"Content-Length: 0", b"Content-Length: x")),
        ("two Content-Length", good.replace(b"Content-Length: 0",
                                            b"Content-Length: 0\r\nContent-Length: 5")),
        ("LF only", good.replace(b"\r\n", b"\n")),
        ("CR only", good.replace(b"\r\n", b"\r")),
        ("folded header", good.replace(b"User-Agent: fuzz", b"User-Agent: fuzz\r\n  more")),
        ("leading folding", good.replace(b"\r\nUser-Agent", b"\r\n User-Agent")),
        ("header without colon", good.replace(b"User-Agent: fuzz", b"User-Agent fuzz")),
        ("empty header name", good.replace(b"User-Agent: fuzz", b": fuzz")),
        ("NUL in head", good.replace(b"fuzz", b"fu\x00zz")),
        ("truncated head", good[: len(good) // 2]),
        ("only CRLF", b"\r\n"),
        ("CRLF ping", b"\r\n\r\n"),
        ("zeros", b"\x00" * 100),
        ("1000 Via", message(port, lport, 2002, headers=[GOOD_HEADERS[0]] * 1000
                             + GOOD_HEADERS[1:])),
        ("5000 headers", message(port, lport, 2003, headers=GOOD_HEADERS
                                 + [b"X-N: %d" % i for i in range(5000)])),
        ("huge header line", message(port, lport, 2004, headers=replace_header(
            b"Subject", b"s" * 40000))),
        ("SDP garbage", message(port, lport, 2005, b"INVITE", GOOD_HEADERS
                                + [b"Content-Type: application/sdp"],
                                body=b"v=0\r\no=\xff\xfe\r\nc=IN IP4 \r\nm=audio x RTP\r\n")),
    ]
    return out


def mutations(seed: int, count: int, port: int, lport: int) -> list[bytes]:
    """``count`` random corruptions of good requests and replies (byte flips, cuts, splices,
    repeats, invalid UTF-8), the same for the same seed."""
    rng = random.Random(seed)
    bases = [message(port, lport, i, m) for i, m in enumerate(
        [b"OPTIONS", b"INVITE", b"REGISTER", b"BYE", b"CANCEL", b"ACK", b"MESSAGE", b"SUBSCRIBE"])]
    bases.append(message(port, lport, 99, first=b"SIP/2.0 200 OK",
                         headers=[h.replace(b"{method}", b"INVITE") for h in GOOD_HEADERS]))
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(7)
            pos = rng.randrange(len(data)) if data else 0
            if op == 0 and data:
                data[pos] = rng.randrange(256)
            elif op == 1:
                del data[pos:pos + rng.randint(1, 40)]
            elif op == 2:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
            elif op == 3:
                data[pos:pos] = rng.choice([b"\r\n", b";", b",", b"<", b">", b"\"", b":",
                                            b"\xff", b"\xc3", b"\x00", b" ", b"=", b"@"])
            elif op == 4 and data:
                chunk = data[pos:pos + rng.randint(1, 80)]
                data[pos:pos] = chunk * rng.randint(1, 20)
            elif op == 5:
                data = data[:pos]
            else:
                name, value = rng.choice(BAD_VALUES)
                data[pos:pos] = b"\r\n" + name + b": " + value[:200] + b"\r\n"
        out.append(bytes(data))
    return out
