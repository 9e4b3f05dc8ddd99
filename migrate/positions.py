"""Line and column of a few nodes, for a fraction of what libcst's PositionProvider costs.

``PositionProvider`` records a range for every node of the module, which costs more than parsing
it. Findings are rare, so this regenerates the code only up to the last node asked for and
counts lines only when it reaches one of them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

import libcst as cst
from libcst._nodes.internal import CodegenState

__all__ = ["locate"]

_NEWLINE = re.compile(r"\r\n?|\n")


class _Done(Exception):
    """Raised to stop code generation once every node was located."""


class _LocatingState(CodegenState):
    """Code generation that notes the position where each wanted node starts."""

    def __init__(self, module: cst.Module, wanted: set[int]) -> None:
        super().__init__(
            default_indent=module.default_indent, default_newline=module.default_newline
        )
        self.wanted = wanted
        self.found: dict[int, tuple[int, int]] = {}
        self._line, self._column, self._counted = 1, 0, 0

    def before_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key not in self.wanted:
            return
        self._advance()
        self.found[key] = (self._line, self._column + 1)
        if len(self.found) == len(self.wanted):
            raise _Done

    def _advance(self) -> None:
        # The tokens generated so far end where the current node starts.
        tokens = self.tokens
        for token in tokens[self._counted :]:
            pieces = _NEWLINE.split(token)
            if len(pieces) == 1:
                self._column += len(token)
            else:
                self._line += len(pieces) - 1
                self._column = len(pieces[-1])
        self._counted = len(tokens)


def locate(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> dict[int, tuple[int, int]]:
    """Map ``id(node)`` to its 1-based ``(line, column)`` for each node of ``module`` given."""
    wanted = {id(node) for node in nodes}
    if not wanted:
        return {}
    state = _LocatingState(module, wanted)
    with contextlib.suppress(_Done):
        module._codegen(state)  # libcst's own code generation, driving our state
    return state.found
