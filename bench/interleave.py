"""Interleaved side-by-side runs at one fixed rate: kemi and Kamailio 5.6 both up, SIPp runs
alternating between them (kemi first in even rounds, Kamailio first in odd ones), so a change
of the machine's load touches both alike. Each round gives one CPU-per-unit ratio; the median
of the rounds is the figure (a shared 2-core machine makes any single run noisy)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from common import Proc, wait_udp_answer
from stepping import sipp_step

from kemi_core.testing.sipp import SippUas


def median(values: list[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count); bench/ has its
    own statistics.py, which shadows the standard library's module here."""
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


#: (server name, its command for a cfg path, the cfg, its port, the UAS port)
Server = tuple[str, Callable[[Path], list[str]], Path, int, int]


def interleaved(servers: list[Server], work: Path, rate: int, seconds: int, rounds: int,
                scenario: str, extra: list[str], unit: str, with_uas: bool = True,
                uas_scenario: str | Path = "uas") -> dict:
    """``rounds`` SIPp runs of ``rate``/s for ``seconds`` against each of two servers,
    alternated; CPU per unit of each run, the ratio first/second per round and its median.
    Each server relays to its own SIPp UAS (``uas_scenario``: built-in name or xml file)."""
    cpu: dict[str, list[float | None]] = {s[0]: [] for s in servers}
    rates: dict[str, list[float]] = {s[0]: [] for s in servers}
    load = [os.getloadavg()[0]]
    with ExitStack() as stack:
        procs = {}
        for name, make_args, cfg, port, uas_port in servers:
            if with_uas:
                stack.enter_context(SippUas(work, uas_port, uas_scenario, name=f"uas_{name}",
                                            extra=["-aa"]))
            proc = Proc(make_args(cfg), work / f"{name}.log", cwd=work)
            stack.callback(proc.stop)
            if not wait_udp_answer(port):
                raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
            procs[name] = (proc, port)
        for i in range(rounds):
            order = servers if i % 2 == 0 else servers[::-1]
            for name, *_ in order:
                proc, port = procs[name]
                r = sipp_step(f"{name}_r{i}", port, work, rate, seconds, proc.pid, scenario,
                              extra, unit)
                cpu[name].append(r[f"cpu_us_per_{unit}"] if r["sustained"] else None)
                rates[name].append(r[f"{unit}s_per_s"])
                print(f"  round {i} {name:18} {r[f'{unit}s_per_s']:8}/s "
                      f"{r[f'cpu_us_per_{unit}']} us CPU/{unit}"
                      f"{'' if r['sustained'] else '  NOT sustained'}", flush=True)
            load.append(os.getloadavg()[0])
    first, second = (s[0] for s in servers)
    ratios = [round(a / b, 3) for a, b in zip(cpu[first], cpu[second], strict=True)
              if a and b]
    return {"rate": rate, "seconds": seconds, "rounds": rounds,
            f"cpu_us_per_{unit}": cpu, "ratios": ratios,
            "median_ratio": round(median(ratios), 3) if ratios else None,
            "load_average_1min": [round(x, 2) for x in load]}
