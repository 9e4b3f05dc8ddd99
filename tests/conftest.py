"""Shared fixtures: every test gets its own storage folder; no test touches the network."""

from __future__ import annotations

import pathlib
import socket
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def storage(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def python() -> str:
    return sys.executable
