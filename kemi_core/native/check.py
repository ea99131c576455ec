"""``kemi check`` for native routes: every error of every block, with file:line:column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kemi_core.config.model import RouteBlock
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native.compiler import Program, compile_routes
from kemi_core.native.parser import parse_block

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core


class CheckResult(list[ConfigError]):
    """The errors found (a list of ConfigError), plus, in syntax-only mode, the functions
    no loaded module provides, as (name, file, line) in source order."""

    def __init__(self) -> None:
        super().__init__()
        self.unknown_functions: list[tuple[str, str, int]] = []
        self.unknown_pvs: list[tuple[str, str, int]] = []


def parse_blocks(blocks: Sequence[RouteBlock], errors: list[ConfigError]) -> tuple[list[A.Route], set[str]]:
    """Parse each block; a block's first syntax error goes to ``errors``. Returns the parsed
    routes and the names of every route[NAME] block (parsed or not)."""
    routes: list[A.Route] = []
    names: set[str] = set()
    for block in blocks:
        if block.kind == "route" and block.name not in (None, "", "0", "DEFAULT_ROUTE"):
            names.add(block.name.strip().strip('"'))
        try:
            routes.append(parse_block(block))
        except ConfigError as exc:
            errors.append(exc)
    return routes, names


def check_blocks(core: Core, blocks: Sequence[RouteBlock], syntax_only: bool = False) -> CheckResult:
    """Parse and compile every block, collecting every error instead of stopping at the first.

    ``syntax_only``: functions that no loaded module provides are not errors but are listed
    in ``result.unknown_functions`` (for checking a config without its modules installed);
    their argument counts cannot be checked then. Pseudo-variables no loaded module defines
    are listed the same way in ``result.unknown_pvs``.
    """
    result = CheckResult()
    routes, names = parse_blocks(blocks, result)
    _, comp = compile_routes(core, routes, syntax_only, result, names)
    result.unknown_functions.extend(comp.unknown)
    result.unknown_pvs.extend(comp.unknown_pvs)
    result.sort(key=lambda e: (e.file or "", e.line or 0, e.column or 0))
    return result


def compile_blocks(core: Core, blocks: Sequence[RouteBlock]) -> Program:
    """Compile for running: raises the first ConfigError (use check_blocks to see all)."""
    routes = [parse_block(b) for b in blocks]
    program, _ = compile_routes(core, routes)
    return program
