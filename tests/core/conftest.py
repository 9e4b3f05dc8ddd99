from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.core import test_contract

    terminalreporter.write_line(
        f"determined contract: compared {test_contract.COMPARED} methods and "
        f"{len(test_contract.ENUMS)} enums with determined.core"
    )
