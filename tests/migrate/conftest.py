"""Helpers for the linter tests: sources with a `$` marking where a finding must start."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from migrate import Finding, lint_source
from migrate.cli import lint_main

MODULE_HEADER = "import pytorch_lightning as pl\n\n\n"
TRIAL_HEADER = "from determined.pytorch.lightning import LightningAdapter\n\n\n"


@dataclass(frozen=True)
class Marked:
    """Source text and the 1-based (line, column) of the `$` it was written with."""

    text: str
    line: int
    column: int


def marked(source: str) -> Marked:
    source = textwrap.dedent(source)
    offset = source.index("$")
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return Marked(source.replace("$", "", 1), line, column)


def lint(source: str, path: str = "model.py") -> list[Finding]:
    return lint_source(textwrap.dedent(source), path)


@dataclass
class CliRun:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run lint-trial in this process (fast) and capture what it prints."""

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        code = lint_main(list(args))
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run
