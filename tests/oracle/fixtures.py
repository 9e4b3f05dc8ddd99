"""pytest fixtures for the oracles; tests import them explicitly.

from tests.oracle.fixtures import pl19_python_fixture  # noqa: F401  (provides `pl19_python`)
"""

from __future__ import annotations

import pathlib

import pytest

from tests.oracle import pl19

__all__ = ["pl19_python_fixture"]


@pytest.fixture(scope="session", name="pl19_python")
def pl19_python_fixture() -> pathlib.Path:
    """The python of the Lightning 1.9.5 virtualenv (built on first use, minutes; then reused)."""
    return pl19.pl19_python()
