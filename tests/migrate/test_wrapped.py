"""A rejection is certain only for a module a trial wraps: lint-trial says "is rejected" for a
module class that a trial of the linted files refers to (or a base of one), and words it as a
warning for when one does otherwise."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from migrate import Finding, lint_paths

from .conftest import CliRun, lint

Cli = Callable[..., CliRun]

MANUAL = "        self.manual_backward(loss)\n"
MODELS = textwrap.dedent(
    """\
    import pytorch_lightning as pl


    class GAN(pl.LightningModule):
        def training_step(self, batch, batch_idx):
            loss = self(batch)
            self.manual_backward(loss)


    class Unused(pl.LightningModule):
        def training_step(self, batch, batch_idx):
            loss = self(batch)
            self.manual_backward(loss)

        def test_step(self, batch, batch_idx):
            pass
    """
)
TRIAL = textwrap.dedent(
    """\
    from determined.pytorch.lightning import LightningAdapter
    {imports}


    class Trial(LightningAdapter):
        def __init__(self, context):
            super().__init__(context, lightning_module={call})
    """
)


def verdicts(findings: list[Finding]) -> dict[tuple[int, str], str]:
    return {(f.line, f.code): f.message.split(":")[0] for f in findings}


def test_a_trial_in_the_same_file_makes_its_module_s_rejection_certain_and_not_the_other() -> None:
    source = (
        MODELS
        + "\n\n"
        + TRIAL.format(imports="", call="GAN()").replace("from determined", "\nfrom determined")
    )
    findings = lint(source)
    assert verdicts(findings) == {
        (7, "LA103"): "`self.manual_backward()` is rejected",
        (13, "LA103"): "`self.manual_backward()` would be rejected once a trial wraps `Unused` "
        "(no trial in the linted files does)",
        (15, "LA101"): "`test_step` is ignored",
    }
    assert [f.conditional for f in findings] == [False, True, False]


def test_without_any_trial_every_rejection_is_conditional() -> None:
    findings = lint(MODELS)
    assert [(f.code, f.status, f.conditional) for f in findings] == [
        ("LA103", "rejected", True),
        ("LA103", "rejected", True),
        ("LA101", "ignored", False),
    ]
    assert "would be rejected once a trial wraps `GAN`" in findings[0].message


@pytest.mark.parametrize(
    ("imports", "call"),
    [
        ("from models import GAN", "GAN()"),
        ("from models import GAN as Generator", "Generator(lr=0.1)"),
        ("import models", "models.GAN()"),
        ("from pkg import models", "models.GAN().to('cpu')"),
    ],
)
def test_a_trial_in_another_linted_file_reaches_the_module_it_imports(
    tmp_path: Path, imports: str, call: str
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "models.py").write_text(MODELS)
    (tmp_path / "pkg" / "model_def.py").write_text(TRIAL.format(imports=imports, call=call))
    findings = lint_paths([str(tmp_path)]).findings
    rejections = [(f.line, f.conditional) for f in findings if f.code == "LA103"]
    assert rejections == [(7, False), (13, True)]


def test_the_base_class_of_a_wrapped_module_is_reached_too(tmp_path: Path) -> None:
    (tmp_path / "base.py").write_text(
        "import pytorch_lightning as pl\n\n\nclass Base(pl.LightningModule):\n"
        "    def training_step(self, batch, batch_idx):\n" + MANUAL
    )
    (tmp_path / "models.py").write_text("from base import Base\n\n\nclass GAN(Base):\n    pass\n")
    (tmp_path / "model_def.py").write_text(
        TRIAL.format(imports="import models", call="models.GAN()")
    )
    (finding,) = lint_paths([str(tmp_path)]).findings
    assert (finding.path, finding.code, finding.conditional) == (
        str(tmp_path / "base.py"),
        "LA103",
        False,
    )
    assert "is rejected" in finding.message


def test_a_module_a_trial_elsewhere_wraps_is_conditional_when_only_its_file_is_linted(
    tmp_path: Path,
) -> None:
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "model_def.py").write_text(
        TRIAL.format(imports="import models", call="models.GAN()")
    )
    alone = lint_paths([str(tmp_path / "models.py")]).findings
    together = lint_paths([str(tmp_path)]).findings
    assert [f.conditional for f in alone if f.code == "LA103"] == [True, True]
    assert [f.conditional for f in together if f.code == "LA103"] == [False, True]


def test_a_conditional_rejection_is_a_warning_in_github_and_sarif_output(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("models.py").write_text(MODELS)
    Path("model_def.py").write_text(TRIAL.format(imports="import models", call="models.GAN()"))
    github = cli("--output-format", "github", "--select", "LA103", ".").out.splitlines()
    assert [line.split(" ")[0] for line in github] == ["::error", "::warning"]
    sarif = json.loads(cli("--output-format", "sarif", "--select", "LA103", ".").out)
    assert [r["level"] for r in sarif["runs"][0]["results"]] == ["error", "warning"]
    data = json.loads(cli("--output-format", "json", "--select", "LA103", ".").out)
    assert [(d["status"], d["conditional"]) for d in data] == [
        ("rejected", False),
        ("rejected", True),
    ]


def test_a_conditional_rejection_still_counts_as_a_finding(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    assert cli("--select", "LA103", str(path)).code == 1
