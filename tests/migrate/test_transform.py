"""The codemod on one file's text: before/after pairs (the whole file, ``main()`` included)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from migrate import MigrationResult, SourceError, migrate_source


def main_block(trial: str, config: str = "const.yaml", det: str = "det") -> str:
    return textwrap.dedent(f'''\


        def main() -> None:
            settings = core_loop.RunSettings.from_args()  # length and periods: the entrypoint's arguments
            info = {det}.get_cluster_info()
            if info is None:  # off-cluster: hparams and data from the config beside this script
                info = core_loop.local_cluster_info(pathlib.Path(__file__).with_name("{config}"))
            with {det}.core.init(distributed=core_loop.distributed_context()) as core_context:
                context = core_loop.TrialContext.create(info, core_context)
                core_loop.seed_everything(context.trial_seed)
                trial = {trial}(context)
                core_loop.train(core_context, context, settings, trial, info.latest_checkpoint)


        if __name__ == "__main__":
            main()
        ''')  # noqa: E501


def migrate(before: str, **kwargs: object) -> MigrationResult:
    return migrate_source(textwrap.dedent(before), path="model_def.py", **kwargs)  # type: ignore[arg-type]


def assert_migrates(before: str, after: str, trial: str = "Trial", **kwargs: object) -> None:
    result = migrate(before, **kwargs)
    assert result.code == textwrap.dedent(after) + main_block(trial)
    again = migrate_source(result.code, path="model_def.py")
    assert again.code == result.code, "a second run must change nothing"


def test_the_mnist_style_trial_becomes_the_contract_shape() -> None:
    assert_migrates(
        """\
        from determined.pytorch import DataLoader, PyTorchTrialContext
        from determined.pytorch.lightning import LightningAdapter
        from mnist import Classifier, DataModule


        class Trial(LightningAdapter):
            def __init__(self, context: PyTorchTrialContext) -> None:
                self.context = context
                lm = Classifier(lr=context.get_hparam("lr"))
                self.dm = DataModule(**context.get_data_config())
                super().__init__(context, lightning_module=lm)

            def build_training_data_loader(self) -> DataLoader:
                return DataLoader(
                    self.dm.train,
                    batch_size=self.context.get_per_slot_batch_size(),
                    shuffle=self.context.get_hparams().get("shuffle", False),
                )
        """,
        """\
        import pathlib

        import determined as det
        import torch.utils.data

        import core_loop
        from mnist import Classifier, DataModule


        class Trial:
            def __init__(self, context: core_loop.TrialContext) -> None:
                self.context = context
                lm = Classifier(lr=context.hparams["lr"])
                self.dm = DataModule(**context.data_config)
                self.lightning_module = lm

            def build_training_data_loader(self) -> torch.utils.data.DataLoader:
                return torch.utils.data.DataLoader(
                    self.dm.train,
                    batch_size=self.context.per_slot_batch_size,
                    shuffle=self.context.hparams.get("shuffle", False),
                )
        """,
        local_modules={"mnist"},
    )


def test_a_module_alias_of_determined_pytorch_is_followed() -> None:
    assert_migrates(
        """\
        import determined.pytorch as dp
        from determined.pytorch.lightning import LightningAdapter as LA
        from models import Net


        class Trial(LA):
            def __init__(self, ctx: dp.PyTorchTrialContext) -> None:
                super().__init__(ctx, lightning_module=Net(ctx.get_trial_seed()))
                self.n = ctx.get_global_batch_size()

            def build_validation_data_loader(self) -> dp.DataLoader:
                return dp.DataLoader(range(4), batch_size=2)
        """,
        """\
        import pathlib

        import determined as det
        import torch.utils.data

        import core_loop
        from models import Net


        class Trial:
            def __init__(self, ctx: core_loop.TrialContext) -> None:
                self.lightning_module = Net(ctx.trial_seed)
                self.n = ctx.global_batch_size

            def build_validation_data_loader(self) -> torch.utils.data.DataLoader:
                return torch.utils.data.DataLoader(range(4), batch_size=2)
        """,
        local_modules={"models"},
    )


def test_from_determined_import_pytorch_and_a_renamed_dataloader_are_followed() -> None:
    assert_migrates(
        """\
        from determined import pytorch
        from determined.pytorch import DataLoader as DL
        from determined.pytorch import lightning


        class Trial(lightning.LightningAdapter):
            def __init__(self, context: pytorch.PyTorchTrialContext) -> None:
                super().__init__(context, lightning_module=None)

            def build_training_data_loader(self) -> DL:
                return DL([1, 2], batch_size=1)

            def build_validation_data_loader(self) -> pytorch.DataLoader:
                return pytorch.DataLoader([1, 2], batch_size=1)
        """,
        """\
        import pathlib

        import determined as det
        import torch.utils.data

        import core_loop


        class Trial:
            def __init__(self, context: core_loop.TrialContext) -> None:
                self.lightning_module = None

            def build_training_data_loader(self) -> torch.utils.data.DataLoader:
                return torch.utils.data.DataLoader([1, 2], batch_size=1)

            def build_validation_data_loader(self) -> torch.utils.data.DataLoader:
                return torch.utils.data.DataLoader([1, 2], batch_size=1)
        """,
    )


def test_a_context_kept_under_another_attribute_is_rewritten_in_every_method() -> None:
    assert_migrates(
        """\
        import determined as det
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, c) -> None:
                self._ctx = c
                super().__init__(c, lightning_module=object())
                self.rank = self._ctx.distributed.get_rank()

            def hp(self):
                return self._ctx.get_hparam("x"), self._ctx.get_experiment_config()
        """,
        """\
        import pathlib

        import determined as det

        import core_loop


        class Trial:
            def __init__(self, c) -> None:
                self._ctx = c
                self.lightning_module = object()
                self.rank = self._ctx.distributed.get_rank()

            def hp(self):
                return self._ctx.hparams["x"], self._ctx.experiment_config
        """,
    )


def test_super_init_with_precision_becomes_one_attribute_per_argument_keeping_comments() -> None:
    assert_migrates(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                # build the module
                lm = object()
                super().__init__(
                    context,
                    lightning_module=lm,  # the module
                    precision=16,  # mixed precision
                    amp_backend="native",
                )  # end of the call
        """,
        """\
        import pathlib

        import determined as det

        import core_loop


        class Trial:
            def __init__(self, context) -> None:
                # build the module
                lm = object()
                self.lightning_module = lm  # the module
                self.precision = 16  # mixed precision
                self.amp_backend = "native"  # end of the call
        """,
    )


@pytest.mark.parametrize(
    "call",
    [
        "super().__init__(context, lm, 16)",
        "super(Trial, self).__init__(context, lm, precision=16)",
        "LightningAdapter.__init__(self, context, lm, 16)",
    ],
)
def test_positional_and_explicit_base_init_forms_map_the_same(call: str) -> None:
    result = migrate(
        f"""\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                lm = object()
                {call}
        """
    )
    assert "        self.lightning_module = lm\n        self.precision = 16\n" in result.code
    assert result.findings == ()


def test_an_unconvertible_call_gets_one_todo_and_a_finding_and_the_rest_migrates() -> None:
    result = migrate(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                model = context.wrap_model(object())
                stop = context.get_stop_requested()
                super().__init__(context, lightning_module=model)
                self.lr = context.get_hparam("lr")
        """
    )
    assert "\n".join(result.code.splitlines()[9:15]) == textwrap.indent(
        textwrap.dedent(
            """\
            # TODO(migrate-trial LA403): `context.wrap_model()`: make the object part of the
            #   LightningModule (an attribute, or configure_optimizers)
            model = context.wrap_model(object())
            # TODO(migrate-trial LA420): `context.get_stop_requested()` has no """
            """core_loop.TrialContext
            #   value: core_loop.train runs to --max-length; stop early from the module
            stop = context.get_stop_requested()"""
        ),
        "        ",
    )
    assert 'self.lr = context.hparams["lr"]' in result.code
    found = [(f.line, f.column, f.code) for f in result.findings]
    assert found == [(10, 9, "LA403"), (13, 9, "LA420")]  # the TODO comments' lines
    assert migrate_source(result.code, path="model_def.py").code == result.code


def test_a_dynamic_base_class_gets_its_todo_once_over_reruns() -> None:
    source = """\
        from determined.pytorch.lightning import LightningAdapter


        def pick(base):
            return base


        class Trial(pick(LightningAdapter)):
            pass
        """
    first = migrate(source)
    assert [(f.line, f.code) for f in first.findings] == [(8, "LA421")]  # the TODO's line
    assert "# TODO(migrate-trial LA421): `Trial`'s base class" in first.code
    assert first.trial is None and "def main" not in first.code
    second = migrate_source(first.code, path="model_def.py")
    assert second.code == first.code
    assert second.code.count("TODO(migrate-trial") == 1


def test_a_trial_without_super_init_gets_a_todo_on_the_class() -> None:
    result = migrate(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                self.lightning_module = object()
        """
    )
    assert [(f.line, f.code) for f in result.findings] == [(8, "LA422")]


def test_a_determined_name_still_used_keeps_its_import() -> None:
    result = migrate(
        """\
        from determined.pytorch import DataLoader, MetricReducer
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                self.reducer = MetricReducer
                super().__init__(context, lightning_module=object())
        """
    )
    assert "from determined.pytorch import MetricReducer\n" in result.code
    assert "LightningAdapter" not in result.code
    assert "import torch.utils.data" not in result.code  # no loader was rewritten


def test_a_file_without_a_trial_comes_back_unchanged() -> None:
    source = "import pytorch_lightning as pl\n\n\nclass M(pl.LightningModule):\n    pass\n"
    result = migrate_source(source, path="lm.py")
    assert (result.code, result.trial, result.changed) == (source, None, False)


def test_crlf_line_endings_and_tab_indentation_are_kept() -> None:
    source = (
        "from determined.pytorch.lightning import LightningAdapter\r\n\r\n\r\n"
        "class Trial(LightningAdapter):\r\n"
        "\tdef __init__(self, context):\r\n"
        "\t\tsuper().__init__(context, lightning_module=context.get_hparam('m'))\r\n"
    )
    code = migrate_source(source, path="model_def.py").code
    assert "\n" not in code.replace("\r\n", "")
    assert "\t\tself.lightning_module = context.hparams['m']\r\n" in code
    assert "\tsettings = core_loop.RunSettings.from_args()" in code
    cst.parse_module(code)


def test_the_config_name_is_what_main_reads() -> None:
    result = migrate(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context):
                super().__init__(context, lightning_module=None)
        """,
        config_name="distributed.yaml",
    )
    assert 'with_name("distributed.yaml")' in result.code


def test_two_trials_in_one_file_are_refused_at_the_second_with_the_fix() -> None:
    source = """\
        from determined.pytorch.lightning import LightningAdapter


        class A(LightningAdapter):
            pass


        class B(LightningAdapter):
            pass
        """
    with pytest.raises(
        SourceError, match=r"model_def.py:8:7: a second LightningAdapter trial `B`.*split the file"
    ):
        migrate(source)


def test_a_syntax_error_names_path_line_and_column() -> None:
    with pytest.raises(SourceError, match=r"^model_def.py:2:\d+: syntax error"):
        migrate_source("x = 1\nclass (:\n", path="model_def.py")


def test_a_file_that_defines_main_is_refused() -> None:
    source = """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            pass


        def main():
            pass
        """
    with pytest.raises(SourceError, match=r"model_def.py:8:5: the file defines `main`; rename it"):
        migrate(source)


def test_get_hparam_by_keyword_or_with_a_variable_name_reads_hparams() -> None:
    assert_migrates(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                self.context = context
                key = "hidden"
                lr = context.get_hparam(name="lr")
                hidden = self.context.get_hparam(key)
                sizes = [context.get_hparam(f"size_{n}") for n in range(2)]
                super().__init__(context, lightning_module=object())
        """,
        """\
        import pathlib

        import determined as det

        import core_loop


        class Trial:
            def __init__(self, context) -> None:
                self.context = context
                key = "hidden"
                lr = context.hparams["lr"]
                hidden = self.context.hparams[key]
                sizes = [context.hparams[f"size_{n}"] for n in range(2)]
                self.lightning_module = object()
        """,
    )


def test_get_hparam_with_arguments_it_cannot_map_gets_a_todo_and_is_left_as_written() -> None:
    result = migrate(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context) -> None:
                lr = context.get_hparam(*names)
                super().__init__(context, lightning_module=object())
        """
    )
    lines = result.code.splitlines()
    assert lines[9:12] == [
        "        # TODO(migrate-trial LA420): `context.get_hparam()` with these arguments: read "
        "the value as",
        "        #   context.hparams[name]",
        "        lr = context.get_hparam(*names)",
    ]
    assert [(f.line, f.code) for f in result.findings] == [(10, "LA420")]


ESCAPES = """\
    from determined.pytorch import PyTorchTrialContext
    from determined.pytorch.lightning import LightningAdapter
    from models import helper, make_model


    class Trial(LightningAdapter):
        def __init__(self, context: PyTorchTrialContext) -> None:
            self.context = context
            model = make_model(self.context)
            self.data = helper(context=context, size=2)
            registry["ctx"] = context
            read = context.get_hparams
            stop = self.context.get_stop_requested
            device = context.device
            assert isinstance(context, PyTorchTrialContext)
            super().__init__(context, lightning_module=model)

        def builder(self):
            return self.context

        def both(self):
            return [self.context, helper(self.context)]
    """


def _marked(result: MigrationResult) -> list[tuple[str, str, str]]:
    """Each TODO as (code, what it names, the statement below its comment)."""
    lines = result.code.splitlines()
    marked = []
    for f in result.findings:
        below = next(line for line in lines[f.line :] if not line.lstrip().startswith("#"))
        marked.append((f.code, f.message.split(": ")[0], below.strip()))
    return marked


def test_a_context_passed_on_stored_returned_or_a_method_taken_gets_one_todo_per_place() -> None:
    result = migrate(ESCAPES)
    assert _marked(result) == [
        ("LA423", "`self.context` passed to `make_model`", "model = make_model(self.context)"),
        ("LA423", "`context` passed to `helper`", "self.data = helper(context=context, size=2)"),
        ("LA423", '`context` stored in `registry["ctx"]`', 'registry["ctx"] = context'),
        ("LA423", "`context.get_hparams` is referenced, not called", "read = context.get_hparams"),
        (
            "LA420",
            "`self.context.get_stop_requested` has no core_loop.TrialContext value",
            "stop = self.context.get_stop_requested",
        ),
        ("LA423", "`self.context` returned", "return self.context"),
        (
            "LA423",
            "`self.context` put in a collection, `self.context` passed to `helper`",
            "return [self.context, helper(self.context)]",
        ),
    ]
    assert "read `context.hparams` where this is called" in result.code
    assert "        device = context.device\n" in result.code  # a TrialContext field
    assert "        assert isinstance(context, core_loop.TrialContext)\n" in result.code
    assert "        self.lightning_module = model\n" in result.code


def test_a_context_passed_on_is_marked_once_over_reruns() -> None:
    first = migrate(ESCAPES)
    assert migrate_source(first.code, path="model_def.py").code == first.code
    # A trial that still is one (e.g. the rewrite was undone by hand) keeps its TODOs, not twice.
    body = first.code.split("\n\n\ndef main()")[0] + "\n"
    for done, undone in (
        ("class Trial:", "class Trial(LightningAdapter):"),
        ("self.lightning_module = model", "super().__init__(context, lightning_module=model)"),
    ):
        body = body.replace(done, undone)
    legacy_again = "from determined.pytorch.lightning import LightningAdapter\n" + body
    second = migrate_source(legacy_again, path="model_def.py")
    assert second.code.count("TODO(migrate-trial LA423)") == 6
    assert second.code.count("TODO(migrate-trial LA420)") == 1


def test_the_field_list_is_core_loop_trial_contexts() -> None:
    from dataclasses import fields

    from migrate.rewrite_context import TRIAL_CONTEXT_FIELDS
    from migrate.templates.core_loop import TrialContext

    assert {f.name for f in fields(TrialContext)} == TRIAL_CONTEXT_FIELDS


def test_a_context_under_an_annotated_attribute_is_followed_not_marked() -> None:
    result = migrate(
        """\
        from determined.pytorch import PyTorchTrialContext
        from determined.pytorch.lightning import LightningAdapter


        class Trial(LightningAdapter):
            def __init__(self, context: PyTorchTrialContext) -> None:
                self.ctx: PyTorchTrialContext = context
                super().__init__(context, lightning_module=object())

            def lr(self):
                return self.ctx.get_hparam("lr")
        """
    )
    assert result.findings == ()
    assert 'return self.ctx.hparams["lr"]' in result.code


def test_a_todo_wrapped_at_another_indentation_is_recognised_as_the_same() -> None:
    from migrate.todos import has_todo, todo_lines

    text = "`context` passed to `helper`: " + "check what it reaches " * 6
    deep = todo_lines("LA423", text, indent=40)
    assert deep != todo_lines("LA423", text)  # wrapped elsewhere
    assert has_todo(["# unrelated", *deep], "LA423", text)
    assert not has_todo([*deep[:-1], "# a note"], "LA423", text)  # a TODO cut short
    assert not has_todo(deep, "LA420", text)
