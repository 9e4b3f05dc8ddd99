"""The cheap locator agrees with libcst's PositionProvider, on awkward files too."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from migrate.positions import locate

from .conftest import lint, marked

AWKWARD = (
    '"""Docstring with ünïcödé and a fake\ndef test_step(self): pass\n"""\n'
    "import pytorch_lightning as pl\n\n"
    "x = ('a',\n     'b')  \\\n\n\n"
    "@decorator(\n    arg=1,\n)\n"
    "class Model(pl.LightningModule):\n"
    "\tdef training_step(self, batch,\n\t\t\tbatch_idx, optimizer_idx):\n"
    "\t\tself.log('é', 1, sync_dist_op='mean'); self.manual_backward(x)\n"
    "\t@staticmethod\n"
    "\tdef test_step(*args): return [a, b]\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_locate_agrees_with_position_provider_for_every_node(newline: str) -> None:
    source = AWKWARD.replace("\n", newline)
    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    expected = wrapper.resolve(PositionProvider)
    nodes = [
        node
        for node in expected
        if isinstance(node, cst.Name | cst.Call | cst.Attribute | cst.SimpleString | cst.List)
    ]
    found = locate(module, nodes)
    for node in nodes:
        start = expected[node].start
        assert found[id(node)] == (start.line, start.column + 1), module.code_for_node(node)


def test_locate_of_nothing_is_empty_and_generates_no_code() -> None:
    assert locate(cst.parse_module("x = 1\n"), []) == {}


def test_findings_in_a_file_with_crlf_line_endings_and_tabs_are_placed_right() -> None:
    case = marked(
        "import pytorch_lightning as pl\n\nclass M(pl.LightningModule):\n"
        "\tdef validation_step(self, batch, batch_idx,\n\t\t\t$dataloader_idx):\n\t\tpass\n"
    )
    text = case.text.replace("\n", "\r\n")
    assert [(f.line, f.column) for f in lint(text)] == [(case.line, case.column)]
