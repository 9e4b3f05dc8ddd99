"""The library API migrate-trial reuses: lint_source, lint_paths and the errors they raise."""

from __future__ import annotations

from pathlib import Path

import pytest

import migrate
from migrate import Finding, MigrateError, SourceError, UsageError, lint_source
from migrate.lint import select_codes
from migrate.source import decode, read_source

from .test_cli import MODEL


def test_lint_source_returns_findings_sorted_by_line() -> None:
    findings = lint_source(MODEL, "model.py")
    assert [(f.line, f.code) for f in findings] == [(8, "LA101"), (11, "LA304")]
    assert all(isinstance(f, Finding) and f.path == "model.py" for f in findings)


def test_lint_source_raises_a_source_error_at_the_syntax_error() -> None:
    with pytest.raises(SourceError, match=r"^trial\.py:2:5: syntax error: ") as caught:
        lint_source("x = 1\nif x\n", "trial.py")
    assert (caught.value.line, caught.value.column) == (2, 5)


def test_every_error_derives_from_migrate_error() -> None:
    assert issubclass(SourceError, MigrateError) and issubclass(UsageError, MigrateError)


def test_reading_a_missing_file_raises_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.py: cannot read the file: No such file"):
        read_source(tmp_path / "missing.py")


def test_bytes_that_are_not_utf8_raise_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"^a\.py: cannot decode the file .* save it as UTF-8$"):
        decode(b"\xff\xfe = 1\n", "a.py")


def test_an_unknown_coding_cookie_raises_a_source_error() -> None:
    with pytest.raises(SourceError, match="cannot decode the file"):
        decode(b"# -*- coding: klingon -*-\nx = 1\n", "a.py")


def test_select_codes_rejects_an_unknown_prefix() -> None:
    with pytest.raises(UsageError, match="unknown rule code or prefix 'ZZ'"):
        select_codes([], select=["ZZ"])


def test_an_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = migrate.nope  # type: ignore[attr-defined]
    assert "lint_source" in dir(migrate)
