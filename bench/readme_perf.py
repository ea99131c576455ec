"""Write the README's call-path figures from bench/figures/summary.json (bench/summary.py).

The part of README.md between the two marker lines below is replaced by the table, with the
date, the commit and the machine it was measured on: no figure in it is copied by hand.

    python bench/readme_perf.py [--check]   (--check: exit 1 when the README is not current)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from summary import SUMMARY, table  # noqa: E402

README = HERE.parent / "README.md"
BEGIN = "<!-- callpath-figures:begin (bench/readme_perf.py writes this part) -->"
END = "<!-- callpath-figures:end -->"


def section(summary: dict) -> str:
    m = summary.get("machine", {})
    lines = [BEGIN, "",
             f"Measured {summary.get('date')} at commit {summary.get('commit')} on {m.get('host')} "
             f"({m.get('cores')} cores, {m.get('cpu')}, CPython {m.get('python')}, kernel "
             f"{m.get('kernel')}) by `make bench` (`bench/summary.py`; the machine shared with "
             "other work: the load average is given beside each ratio):", "",
             *table(summary), "", END]
    return "\n".join(lines)


def render(readme: str, summary: dict) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{README}: the markers {BEGIN!r} ... {END!r} are missing")
    return readme[:start] + section(summary) + readme[end + len(END):]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    summary = json.loads(SUMMARY.read_text())
    old = README.read_text()
    new = render(old, summary)
    if args.check:
        return 0 if new == old else 1
    README.write_text(new)
    print(f"{README.name}: call-path figures of {summary.get('date')} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
