"""The route blocks of Debian's /etc/kamailio/kamailio.cfg parse in syntax-only mode.

The blocks are extracted here with a small #!ifdef/#!define preprocessor and a brace matcher,
so this test does not depend on kemi_core.config; it runs for the default set of defines and
for every WITH_* option switched on at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kemi_core.config.model import RouteBlock
from kemi_core.native import check_blocks

CFG = Path("/etc/kamailio/kamailio.cfg")
pytestmark = pytest.mark.skipif(not CFG.exists(), reason="Kamailio's Debian config is not installed")

_HEADER = re.compile(r"^[ \t]*(request_route|route|reply_route|onreply_route|failure_route|"
                     r"branch_route|branch_failure_route|onsend_route|event_route)"
                     r"[ \t]*(?:\[[ \t]*([^\]]*?)[ \t]*\])?[ \t]*\{", re.M)
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|[A-Za-z_][A-Za-z0-9_]*|.', re.S)


def preprocess(text: str, defines: dict[str, str]) -> str:
    """Blank out inactive #!ifdef branches (keeping line numbers) and apply #!define."""
    out: list[str] = []
    stack: list[bool] = []
    for line in text.split("\n"):
        s = line.strip()
        active = all(stack)
        m = re.match(r"#!(ifdef|ifndef|else|endif|define|trydef|redefine)\b\s*(\S*)\s*(.*)", s)
        if m:
            kw, name, value = m.groups()
            if kw == "ifdef":
                stack.append(name in defines)
            elif kw == "ifndef":
                stack.append(name not in defines)
            elif kw == "else":
                stack[-1] = not stack[-1]
            elif kw == "endif":
                stack.pop()
            elif active and (kw != "trydef" or name not in defines):
                defines[name] = value.strip()
            out.append("")
            continue
        out.append(line if active else "")
    body = "\n".join(out)
    return "".join(defines.get(t, t) if t[0].isalpha() or t[0] == "_" else t
                   for t in _TOKEN.findall(body))


def extract_blocks(text: str, file: str) -> list[RouteBlock]:
    blocks = []
    for m in _HEADER.finditer(text):
        start = m.end()
        depth, i = 1, start
        while depth:
            c = text[i]
            if c in "\"'":
                i = text.index(c, i + 1)
            elif c == "#":
                i = text.index("\n", i)
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        blocks.append(RouteBlock(file=file, line=text.count("\n", 0, m.start()) + 1,
                                 kind=m.group(1), name=m.group(2), body=text[start:i - 1],
                                 body_line=line, body_column=column))
    return blocks


def with_all_options(text: str) -> dict[str, str]:
    return {name: "1" for name in set(re.findall(r"#!ifn?def\s+(WITH_\w+)", text))}


@pytest.mark.parametrize("options", ["default", "all WITH_* options"])
def test_debian_config_routes_parse(core, options: str) -> None:
    raw = CFG.read_text()
    defines = {} if options == "default" else with_all_options(raw)
    blocks = extract_blocks(preprocess(raw, defines), str(CFG))
    kinds = {(b.kind, b.name) for b in blocks}
    assert ("request_route", None) in kinds and ("failure_route", "MANAGE_FAILURE") in kinds
    assert len(blocks) >= 15
    result = check_blocks(core, blocks, syntax_only=True)
    assert list(result) == [], "\n".join(str(e) for e in result)
    names = {n for n, _, _ in result.unknown_functions}
    # Module functions are listed, not fatal; core statements and test functions are not.
    assert {"t_check_trans", "record_route", "loose_route"} <= names
    assert not names & {"setflag", "isflagset", "force_rport", "strip", "prefix", "t_relay",
                        "is_method", "sl_send_reply"}
