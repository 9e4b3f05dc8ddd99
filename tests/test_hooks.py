"""The hook table (shim.hooks): complete, consistent, and the README's copy is current."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shim.hooks import (
    HOOKS,
    README_END,
    README_START,
    Scope,
    Status,
    by_scope,
    render_markdown_table,
    render_readme_block,
    rules_by_code,
    sync_readme,
)
from shim.hooks.__main__ import main as hooks_main
from shim.hooks._table import FAMILIES

README = Path(__file__).resolve().parents[1] / "README.md"

# What the product runs (DESIGN section 5), what it ignores and what it refuses.
SUPPORTED = [
    "training_step",
    "validation_step",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "configure_optimizers",
    "prepare_data",
    "build_training_data_loader",
    "build_validation_data_loader",
]
LEGACY = [
    "training_step(optimizer_idx)",
    "training_epoch_end",
    "validation_epoch_end",
    "training_step_end",
    "validation_step_end",
]
IGNORED = ["test_step", "test_dataloader", "test_epoch_end", "on_test_batch_start"]
REJECTED = (
    "self.manual_backward()",
    "self.automatic_optimization = False",
    "tbptt_split_batch",
    "training_step(hiddens)",
    "dataloader_idx",
    "several validation loaders",
)
# Determined's LightningAdapter.check_compatibility refused these overrides.
ADAPTER_REFUSED = [
    "backward",
    "get_progress_bar_dict",
    "on_fit_end",
    "on_fit_start",
    "on_pretrain_routine_end",
    "on_pretrain_routine_start",
    "on_test_batch_end",
    "on_test_batch_start",
    "on_test_epoch_end",
    "on_test_epoch_start",
    "optimizer_step",
    "optimizer_zero_grad",
    "setup",
    "tbptt_split_batch",
    "teardown",
    "test_dataloader",
    "test_epoch_end",
    "test_step",
    "test_step_end",
    "training_step_end",
    "transfer_batch_to_device",
    "validation_step_end",
]


@pytest.mark.parametrize(
    ("names", "status"),
    [
        (SUPPORTED, Status.SUPPORTED),
        (LEGACY, Status.LEGACY),
        (IGNORED, Status.IGNORED),
        (REJECTED, Status.REJECTED),
    ],
)
def test_the_table_gives_the_product_s_verdict_for_each_hook(
    names: tuple[str, ...] | list[str], status: Status
) -> None:
    assert {name: HOOKS[name].status for name in names} == dict.fromkeys(names, status)


def test_every_hook_the_original_adapter_refused_has_an_entry() -> None:
    assert set(ADAPTER_REFUSED) <= set(HOOKS)


def test_every_hook_of_the_installed_lightning_has_an_entry() -> None:
    from pytorch_lightning import LightningModule
    from pytorch_lightning.core import hooks

    names = {
        name
        for cls in (hooks.ModelHooks, hooks.DataHooks, hooks.CheckpointHooks)
        for name, _ in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }
    names |= {
        name
        for name, value in vars(LightningModule).items()
        if callable(value) and name.endswith(("_step", "_end", "_start"))
    }
    assert names <= set(HOOKS)


def test_names_are_unique_so_no_entry_hides_another() -> None:
    written = [name for family in FAMILIES for name in family.names]
    assert len(written) == len(set(written)) == len(HOOKS)


def test_codes_are_grouped_by_kind_and_each_code_has_one_status_and_title() -> None:
    allowed = {
        "0": {Status.SUPPORTED},
        "1": {Status.IGNORED, Status.REJECTED},
        "2": {Status.REJECTED},
        "3": {Status.LEGACY, Status.IGNORED},
        "4": {Status.LEGACY},
    }
    by_code: dict[str, set[tuple[Status, str, str, str]]] = {}
    for hook in HOOKS.values():
        assert re.fullmatch(r"LA[0-4]\d\d", hook.code), hook.code
        assert hook.status in allowed[hook.code[2]], hook
        by_code.setdefault(hook.code, set()).add((hook.status, hook.title, hook.reason, hook.fix))
    assert all(len(variants) == 1 for variants in by_code.values())


def test_every_reported_entry_says_why_and_what_to_do() -> None:
    for hook in HOOKS.values():
        assert hook.reason
        assert bool(hook.fix) is hook.reported, hook


def test_rules_by_code_groups_only_reported_entries_in_code_order() -> None:
    rules = rules_by_code()
    assert list(rules) == sorted(rules)
    assert {h.name for hooks in rules.values() for h in hooks} == {
        h.name for h in HOOKS.values() if h.reported
    }


def test_by_scope_gives_the_module_methods_the_runtime_checks_for_overrides() -> None:
    methods = {hook.name for hook in by_scope(Scope.MODULE_METHOD)}
    assert {"test_step", "training_step", "backward"} <= methods
    assert "build_callbacks" not in methods and "dataloader_idx" not in methods


def test_the_markdown_table_has_one_row_per_code() -> None:
    rows = render_markdown_table().splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == sorted(
        {h.code for h in HOOKS.values()}
    )


def test_the_readme_table_is_generated_from_the_hook_table() -> None:
    assert sync_readme(README, write=False), "run: python -m shim.hooks --write-readme"
    text = README.read_text(encoding="utf-8")
    block = text[text.index(README_START) + len(README_START) : text.index(README_END)]
    assert block == "\n" + render_readme_block()
    assert block.endswith("\n" + render_markdown_table())


def test_a_stale_readme_is_reported_and_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\n| old |\n{README_END}\n\nAfter.\n")
    assert hooks_main(["--check-readme", "--readme", str(readme)]) == 1
    assert "the hook table is stale; run `python -m shim.hooks --write-readme`" in (
        capsys.readouterr().err
    )
    assert hooks_main(["--write-readme", "--readme", str(readme)]) == 0
    assert hooks_main(["--check-readme", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n") and text.endswith(f"{README_END}\n\nAfter.\n")


def test_a_readme_without_markers_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# No table here\n")
    with pytest.raises(ValueError, match="no <!-- hooks-table:start --> .* block to fill"):
        sync_readme(readme, write=True)
    assert hooks_main(["--write-readme", "--readme", str(readme)]) == 2
    assert "error:" in capsys.readouterr().err


def test_printing_the_table_writes_markdown_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert hooks_main([]) == 0
    assert capsys.readouterr().out == render_markdown_table()


def test_importing_the_table_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, shim.hooks\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'pytorch_lightning', 'determined')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
