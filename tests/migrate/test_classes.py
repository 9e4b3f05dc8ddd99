"""Finding LightningModule and LightningAdapter subclasses under any import spelling."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from migrate import lint_paths
from migrate.classes import Kind, find_classes, kind_of_name

from .conftest import lint

TEST_STEP = "    def test_step(self, batch, batch_idx):\n        pass\n"


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("import pytorch_lightning as pl", "pl.LightningModule"),
        ("import pytorch_lightning", "pytorch_lightning.LightningModule"),
        ("from pytorch_lightning import LightningModule", "LightningModule"),
        ("from pytorch_lightning import LightningModule as LM", "LM"),
        ("from pytorch_lightning.core.lightning import LightningModule", "LightningModule"),
        ("import lightning as L", "L.LightningModule"),
        ("import lightning.pytorch as lp", "lp.LightningModule"),
        ("import lightning.pytorch", "lightning.pytorch.LightningModule"),
        ("from lightning import pytorch as lpt", "lpt.LightningModule"),
        ("from lightning.pytorch.core.module import LightningModule as Base", "Base"),
        ("from pytorch_lightning import *", "LightningModule"),
        (
            "try:\n    import lightning.pytorch as pl\n"
            "except ImportError:\n    import pytorch_lightning as pl",
            "pl.LightningModule",
        ),
    ],
)
def test_a_lightning_module_is_found_under_any_import_alias(imports: str, base: str) -> None:
    findings = lint(f"{imports}\n\n\nclass Model({base}):\n{TEST_STEP}")
    assert [f.code for f in findings] == ["LA101"]


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("from mylib import LightningModule", "LightningModule"),
        ("import torch", "torch.nn.Module"),
        ("", "LightningModule"),
        ("import pytorch_lightning as pl", "pl.Callback"),
        ("import lightning as L", "L.LightningDataModule"),
    ],
)
def test_classes_with_other_bases_are_not_lightning_modules(imports: str, base: str) -> None:
    assert lint(f"{imports}\n\n\nclass Model({base}):\n{TEST_STEP}") == []


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("from determined.pytorch.lightning import LightningAdapter", "LightningAdapter"),
        ("from determined.pytorch import lightning as dl", "dl.LightningAdapter"),
        ("import determined.pytorch.lightning", "determined.pytorch.lightning.LightningAdapter"),
        ("from shim.lightning import LightningAdapter as Adapter", "Adapter"),
    ],
)
def test_a_lightning_adapter_trial_is_found_under_any_import_alias(imports: str, base: str) -> None:
    source = (
        f"{imports}\n\n\nclass Trial({base}):\n    def build_callbacks(self):\n        return 1\n"
    )
    assert [f.code for f in lint(source)] == ["LA401"]


def test_a_base_class_of_the_same_file_passes_its_kind_on_even_when_defined_later() -> None:
    source = textwrap.dedent(
        """\
        import pytorch_lightning as pl


        class Model(Base):
            def test_step(self, batch, batch_idx):
                pass


        class Base(Middle):
            pass


        class Middle(pl.LightningModule):
            pass
        """
    )
    assert [(f.line, f.code) for f in lint(source)] == [(5, "LA101")]


def test_trial_methods_on_a_module_and_module_hooks_on_a_trial_are_not_mixed_up() -> None:
    source = textwrap.dedent(
        """\
        import pytorch_lightning as pl
        from determined.pytorch.lightning import LightningAdapter


        class Model(pl.LightningModule):
            def build_callbacks(self):
                return {}


        class Trial(LightningAdapter):
            def test_step(self):
                pass
        """
    )
    assert lint(source) == []


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "import_line", ["from models import Base", "from .models import Base", "import models"]
)
def test_a_base_class_defined_in_another_linted_file_is_followed(
    tmp_path: Path, import_line: str
) -> None:
    models = "import lightning as L\n\nclass Base(L.LightningModule):\n    pass\n"
    write(tmp_path / "pkg" / "models.py", models)
    base = "models.Base" if import_line == "import models" else "Base"
    trial = write(
        tmp_path / "pkg" / "trial.py",
        f"{import_line}\n\n\nclass Model({base}):\n{TEST_STEP}",
    )
    result = lint_paths([str(tmp_path)])
    assert [(f.path, f.line, f.code) for f in result.findings] == [(str(trial), 5, "LA101")]


def test_a_chain_of_bases_across_three_files_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "a.py", "import lightning as L\n\nclass A(L.LightningModule):\n    pass\n")
    write(tmp_path / "b.py", "from a import A\n\nclass B(A):\n    pass\n")
    c = write(tmp_path / "c.py", f"from b import B\n\nclass C(B):\n{TEST_STEP}")
    files = [str(tmp_path / name) for name in ("c.py", "b.py", "a.py")]
    assert [(f.path, f.code) for f in lint_paths(files).findings] == [(str(c), "LA101")]


def test_a_base_from_a_file_not_linted_leaves_the_class_alone(tmp_path: Path) -> None:
    c = write(tmp_path / "c.py", f"from b import B\n\nclass C(B):\n{TEST_STEP}")
    assert lint_paths([str(c)]).findings == []


def test_find_classes_reports_bases_as_dotted_names() -> None:
    module = cst.parse_module(
        "import torch.nn as nn\nfrom . import x\nclass A(nn.Module, x.Y, Generic[T]):\n    pass\n"
    )
    (info,) = find_classes(module)
    assert (info.name, info.bases, info.kind) == ("A", ("torch.nn.Module", ".x.Y"), None)
    assert info.may_be_local_subclass  # x.Y may be a module class of another linted file


def test_kind_of_name_needs_the_lightning_or_determined_package() -> None:
    assert kind_of_name("lightning.pytorch.LightningModule") is Kind.MODULE
    assert kind_of_name("determined.pytorch.lightning.LightningAdapter") is Kind.TRIAL
    assert kind_of_name("other.LightningModule") is None
