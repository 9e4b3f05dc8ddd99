"""Where each entry of a YAML document sits in its text, and edits that leave the rest as written.

``ruamel.yaml`` re-emits a whole document when it dumps one: it keeps comments and key order, but
normalises indentation and moves comments between keys. The config migration instead edits the
original text in place, so every line it does not touch stays byte for byte. ``parse_spans``
builds a tree of nodes with their start and end positions from ``ruamel.yaml``'s parse events
(alias occurrences included, which a composed node graph loses); ``TextEdits`` removes or
replaces mapping entries by those positions.

Comments follow these rules when a block mapping entry is removed:

- comment lines directly above the key, at its indentation, go with it, unless they follow a
  blank line (or open the mapping): then they head the run of entries below them up to the next
  blank line, and go only when every entry of that run goes;
- comment lines after its value, indented deeper than the key, go with it; those at the key's
  indentation or less belong to what follows and stay;
- a blank line left doubled by the removal is dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

__all__ = ["Entry", "Node", "TextEdits", "parse_spans"]


@dataclass
class Node:
    """A scalar, alias, mapping or sequence and the part of the text it spans."""

    kind: str  # "scalar" | "alias" | "mapping" | "sequence"
    line: int  # 0-based line where it starts
    column: int
    start: int  # index into the text
    end: int
    end_line: int
    flow: bool = False
    value: str | None = None  # scalar text, or the anchor an alias names
    style: str | None = None  # scalar quoting: None (plain), "'", '"', "|", ">"
    anchor: str | None = None
    entries: list[Entry] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)

    def entry(self, key: str) -> Entry | None:
        """The entry whose plain key is ``key`` in this mapping, if written here."""
        for item in self.entries:
            if item.key.kind == "scalar" and item.key.value == key:
                return item
        return None


@dataclass
class Entry:
    key: Node
    value: Node


def parse_spans(text: str) -> Node | None:
    """The first document's root node with positions; ``None`` for an empty document.

    Raises ``ruamel.yaml``'s ``MarkedYAMLError`` for text that is not YAML.
    """
    events = iter(YAML(typ="safe", pure=True).parse(text))
    for event in events:
        if isinstance(event, DocumentStartEvent):
            first = next(events)
            if isinstance(first, StreamEndEvent) or not _is_node(first):
                return None
            return _node(first, events)
    return None


def _is_node(event: Event) -> bool:
    return isinstance(event, ScalarEvent | AliasEvent | CollectionStartEvent)


def _node(event: Event, events: Iterator[Event]) -> Node:
    start = event.start_mark
    base: dict[str, Any] = {"line": start.line, "column": start.column, "start": start.index}
    anchor = getattr(event, "anchor", None)
    if isinstance(event, AliasEvent):
        end = event.end_mark
        return Node("alias", **base, end=end.index, end_line=end.line, value=event.anchor)
    if isinstance(event, ScalarEvent):
        end = event.end_mark
        return Node(
            "scalar", **base, end=end.index, end_line=end.line, value=event.value,
            style=event.style, anchor=anchor,
        )  # fmt: skip
    assert isinstance(event, CollectionStartEvent)  # _is_node() let nothing else through
    mapping = isinstance(event, MappingStartEvent)
    flow = bool(event.flow_style)
    children: list[Node] = []
    for child in events:
        if not _is_node(child):  # the collection's end event
            last = child.end_mark if flow or not children else None
            break
        children.append(_node(child, events))
    # A block collection ends where its last child does; its end event sits at the next token.
    end_index = last.index if last is not None else children[-1].end
    end_line = last.line if last is not None else children[-1].end_line
    node = Node(
        "mapping" if mapping else "sequence",
        **base,
        end=end_index,
        end_line=end_line,
        flow=flow,
        anchor=anchor,
    )
    if mapping:
        node.entries = [Entry(k, v) for k, v in zip(children[::2], children[1::2], strict=True)]
    else:
        node.items = children
    if isinstance(event, SequenceStartEvent | MappingStartEvent) and children and not flow:
        # A block collection starts at its first child; an anchor or tag sits before it.
        node.line, node.column, node.start = children[0].line, children[0].column, children[0].start
    return node


class TextEdits:
    """Removals and replacements on one text, applied together by ``apply()``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self._offsets = [0]
        for line in self.lines:
            self._offsets.append(self._offsets[-1] + len(line))
        self._newline = "\r\n" if "\r\n" in text else "\n"
        self._spans: list[tuple[int, int, str]] = []
        # Per block mapping: the entries to remove and the lines to put in the first one's place.
        self._removed: dict[int, tuple[Node, dict[int, list[str]]]] = {}

    def replace(self, node: Node, new: str) -> None:
        """Put ``new`` in place of the text ``node`` spans."""
        self._spans.append((node.start, node.end, new))

    def remove(self, parent: Node, entry: Entry, insert: tuple[str, ...] = ()) -> None:
        """Remove ``entry`` from the mapping ``parent``; ``insert`` entries (``"key: value"``)
        take its place, at its indentation."""
        index = next(i for i, item in enumerate(parent.entries) if item is entry)
        if parent.flow:
            self._remove_flow(parent, index, insert)
            return
        _, chosen = self._removed.setdefault(id(parent), (parent, {}))
        indent = " " * entry.key.column
        chosen[index] = [f"{indent}{item}{self._newline}" for item in insert]

    def apply(self) -> str:
        """The text with every edit made; edits must not overlap."""
        spans = list(self._spans)
        for parent, chosen in self._removed.values():
            spans.extend(self._block_removals(parent, chosen))
        spans.sort()
        for before, after in itertools.pairwise(spans):
            if after[0] < before[1]:
                raise RuntimeError(f"overlapping config edits: {before} {after}")  # our bug
        out, at = [], 0
        for start, end, new in spans:
            out.append(self.text[at:start])
            out.append(new)
            at = end
        out.append(self.text[at:])
        return "".join(out)

    # -- flow mappings: entries and their commas ----------------------------------------------

    def _remove_flow(self, parent: Node, index: int, insert: tuple[str, ...]) -> None:
        entries = parent.entries
        entry = entries[index]
        if insert:
            self._spans.append((entry.key.start, entry.value.end, ", ".join(insert)))
            return
        if index > 0:  # ", key: value" after the entry before it
            self._spans.append((entries[index - 1].value.end, entry.value.end, ""))
        elif len(entries) > 1:  # "key: value, " before the next one
            self._spans.append((entry.key.start, entries[1].key.start, ""))
        else:
            self._spans.append((entry.key.start, entry.value.end, ""))

    # -- block mappings: whole lines, with their comments -------------------------------------

    def _block_removals(
        self, parent: Node, chosen: dict[int, list[str]]
    ) -> list[tuple[int, int, str]]:
        entries = parent.entries
        ranges: list[tuple[int, int, list[str]]] = []
        for index in sorted(chosen):
            entry = entries[index]
            first = self._comments_above(parent, index, set(chosen))
            last = self._last_line(entry)
            ranges.append((first, last, chosen[index]))
        merged: list[tuple[int, int, list[str]]] = []
        for first, last, insert in ranges:
            if merged and first <= merged[-1][1] + 1:
                a, b, lines = merged[-1]
                merged[-1] = (a, max(b, last), lines + insert)
            else:
                merged.append((first, last, list(insert)))
        out = []
        for first, last, insert in merged:
            if not insert:
                first, last = self._collapse_blank(first, last)
            out.append((self._offsets[first], self._offsets[last + 1], "".join(insert)))
        return out

    def _last_line(self, entry: Entry) -> int:
        value = entry.value
        last = value.end_line
        # A block scalar ends at the start of the line after it.
        if last > entry.key.line and value.end == self._offsets[min(last, len(self.lines))]:
            last -= 1
        last = min(last, len(self.lines) - 1)
        column = entry.key.column
        while last + 1 < len(self.lines) and self._is_comment(last + 1, deeper_than=column):
            last += 1
        return last

    def _comments_above(self, parent: Node, index: int, removed: set[int]) -> int:
        key = parent.entries[index].key
        first = key.line
        while first > 0 and self._is_comment(first - 1, at=key.column):
            first -= 1
        if first == key.line:
            return first
        opens = index == 0 or first == 0 or self._is_blank(first - 1)
        if not opens:
            return first  # the comment sits right under other content: it is this key's own
        # A comment after a blank line heads the run of entries down to the next blank line.
        run = index
        while run + 1 < len(parent.entries) and not any(
            self._is_blank(line)
            for line in range(self._last_line(parent.entries[run]) + 1,
                              parent.entries[run + 1].key.line)
        ):  # fmt: skip
            run += 1
        return first if all(i in removed for i in range(index, run + 1)) else key.line

    def _collapse_blank(self, first: int, last: int) -> tuple[int, int]:
        before_blank = first == 0 or self._is_blank(first - 1)
        after_blank = last + 1 >= len(self.lines) or self._is_blank(last + 1)
        if before_blank and after_blank:
            if last + 1 < len(self.lines):
                return first, last + 1
            if first > 0:
                return first - 1, last
        return first, last

    def _is_blank(self, line: int) -> bool:
        return not self.lines[line].strip()

    def _is_comment(self, line: int, *, at: int = -1, deeper_than: int = -1) -> bool:
        text = self.lines[line]
        stripped = text.lstrip(" ")
        if not stripped.startswith("#"):
            return False
        indent = len(text) - len(stripped)
        return indent == at if at >= 0 else indent > deeper_than
