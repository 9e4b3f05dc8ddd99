"""Oracles for run-trial: real Lightning Trainers (the installed 2.x and 1.9 in its own venv).

Modules here import nothing heavy at import time, so ``python -m tests.oracle.lightning_run``
runs in the Lightning 1.9 environment as well as in the main one.
"""

__all__: list[str] = []
