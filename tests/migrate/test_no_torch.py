"""Linting never imports torch or Lightning, and never runs the code it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .test_cli import MODEL

PROBE = """
import sys
from migrate.cli import lint_main
import migrate
code = lint_main([sys.argv[1]])
migrate.lint_source(open(sys.argv[1]).read(), sys.argv[1])
heavy = sorted(m for m in sys.modules
               if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning', 'determined'))
print('exit', code, 'heavy', heavy)
"""


def test_linting_imports_neither_torch_nor_lightning(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("import torch\n" + MODEL)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model)], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "exit 1 heavy []"


def test_importing_migrate_loads_nothing_until_used() -> None:
    code = (
        "import sys, migrate\n"
        "print(sorted(m for m in sys.modules if m.startswith(('migrate', 'libcst'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['migrate']"


def test_the_linted_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = tmp_path / "model.py"
    model.write_text(f"open({str(marker)!r}, 'w').close()\n" + MODEL)
    from migrate.cli import lint_main

    assert lint_main([str(model)]) == 1
    assert not marker.exists()
