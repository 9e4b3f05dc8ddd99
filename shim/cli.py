"""``run-trial CONFIG [CONTEXT_DIR]``: run a legacy LightningAdapter trial unchanged, or a Core
API script entrypoint (``python3 model_def.py ARGS``) on ``shim.core`` (see ``shim.script_run``).

Exit status: 0 completed; 1 the trial failed (after its restarts), or this package failed (a bug:
one line says so, the traceback goes to ``run-trial-error.log`` in the run's folder); 2 the user's
input (config, flags, trial file, hooks the hook table rejects, another run-trial on the same
run), with file:line where known; 3 preempted (run the same command again to resume).
``--nproc N`` (default ``resources.slots_per_trial``) runs N ranks through torchrun
(``shim.launch``) with the same exit statuses: the chief's outcome, one progress display and one
summary.
``shim.failures`` tells the kinds apart. Progress goes to stderr; ``--json`` prints the final
summary as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from shim.errors import UserInputError
from shim.failures import Kind, diagnose, write_log
from shim.launch import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_USAGE,
    Launch,
    earlier_final_exit,
    launch,
    record_exit_status,
)
from shim.runfiles import SEED_RANGE

__all__ = ["console_main", "main"]


class _Failure:
    """What the launcher of a torchrun rank must know beyond the exit status: whether a restart
    could help (not for the user's input or this package's bug)."""

    final = False


_failure = _Failure()


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run-trial",
        description="Run a legacy Determined LightningAdapter trial, or a Core API script "
        "entrypoint, locally (resumes by default).",
        epilog="Also: run-trial export-lightning CHECKPOINT_DIR OUT.ckpt",
    )
    parser.add_argument("config", type=pathlib.Path, help="experiment config (const.yaml)")
    parser.add_argument(
        "context_dir",
        type=pathlib.Path,
        nargs="?",
        help="folder with the trial (default: the config's folder)",
    )
    parser.add_argument(
        "--hparam",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a hyperparameter (repeatable; dotted names for nested ones)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        metavar="BATCHES",
        help="train this many batches instead of searcher.max_length (module:Class trials)",
    )
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--checkpoint-storage", metavar="DIR", help="override checkpoint_storage")
    parser.add_argument(
        "--seed",
        type=_seed,
        help=f"override reproducibility.experiment_seed (0 to {SEED_RANGE.stop - 1})",
    )
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument("--plain", action="store_true", help="plain lines, no progress bar")
    ranks = parser.add_argument_group(
        "several ranks",
        "launched through torchrun (torch.distributed.run); gloo on CPU, NCCL on GPU",
    )
    ranks.add_argument(
        "--nproc",
        type=_at_least(1),
        metavar="N",
        help="ranks on this machine (default: resources.slots_per_trial; 1 runs in this process)",
    )
    ranks.add_argument("--nnodes", type=_at_least(1), metavar="N", help="machines in the run")
    ranks.add_argument(
        "--node-rank",
        type=_at_least(0),
        metavar="K",
        help="this machine's number (static rendezvous)",
    )
    ranks.add_argument("--rdzv-backend", metavar="NAME", help="torchrun rendezvous (c10d, static)")
    ranks.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="where the machines meet")
    ranks.add_argument("--rdzv-id", metavar="ID", help="the run's rendezvous id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["export-lightning"]:
        from shim.export import export_main

        return export_main(args_list[1:])
    parser = _run_parser()
    args = parser.parse_args(args_list)
    if args.node_rank is not None and args.nnodes is None:
        parser.error(
            f"--node-rank {args.node_rank} needs --nnodes: give the number of machines too"
        )
    if _launched() and args.nproc is not None:
        parser.error("--nproc launches torchrun itself; under torchrun, leave it out")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("run-trial: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from shim.config import load_experiment_config
    from shim.progress import NullReporter, make_reporter

    context_dir: pathlib.Path | None = None
    run_dir: pathlib.Path | None = None
    if _launched():
        final = earlier_final_exit()
        if final is not None:
            print(
                "run-trial: not restarting: an earlier attempt failed in a way a restart "
                "cannot mend (its message is above)",
                file=sys.stderr,
            )
            _failure.final = True
            return final
    try:
        overrides = dict(_split_hparam(item) for item in args.hparam)
        if args.max_length is not None and args.max_length < 1:
            raise UserInputError(f"--max-length must be at least 1 batch, not {args.max_length}")
        config = load_experiment_config(args.config)
        context_dir = args.context_dir or args.config.resolve().parent
        if not context_dir.is_dir():
            raise UserInputError(f"CONTEXT_DIR {context_dir} is not a folder")
        plan = None if _launched() else _launch_plan(args, config)
        if plan is not None:
            plan.check()
        if plan is not None and plan.distributed:
            # The ranks load the trial; the launcher stays light (no torch, no Lightning).
            return launch(plan, _worker_args(args))
        from shim.runner import RunOptions, run_folder

        options = RunOptions(
            context_dir=context_dir,
            hparam_overrides=overrides,
            max_length=args.max_length,
            # A relaunch after a crash resumes the run that the first attempt started afresh.
            fresh=args.fresh and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0",
            checkpoint_storage=args.checkpoint_storage,
            seed=args.seed,
        )
        run_dir = run_folder(config, options)
    except Exception as exc:
        return _report_failure(exc, context_dir, run_dir)
    from shim.runner import run_trial

    chief = int(os.environ.get("RANK", "0")) == 0
    reporter = make_reporter(force_plain=args.plain) if chief else NullReporter()
    warnings.showwarning = _warning_printer(reporter)  # type: ignore[assignment]
    try:
        summary = run_trial(config, options, reporter)
    except Exception as exc:
        reporter.close()
        return _report_failure(exc, context_dir, run_dir)
    reporter.on_end(summary)
    reporter.close()
    if args.json and chief:
        print(summary.to_json())
    return EXIT_PREEMPTED if summary.status == "preempted" else EXIT_OK


def _report_failure(
    exc: Exception, trial_dir: pathlib.Path | None, run_dir: pathlib.Path | None
) -> int:
    """One line on stderr for the failure's kind; the traceback of a failure that is not the
    user's input goes to the run folder's log."""
    failure = diagnose(exc, trial_dir)
    _failure.final = failure.kind in (Kind.USER_INPUT, Kind.INTERNAL)
    if failure.kind is Kind.USER_INPUT:
        print(f"run-trial: error: {failure.describe()}", file=sys.stderr)
        return EXIT_USAGE
    internal = failure.kind is Kind.INTERNAL
    log = write_log(failure, run_dir, "internal error" if internal else "the trial failed")
    if log is None:  # nowhere to write it: the traceback is still the most useful thing to show
        traceback.print_exception(exc, file=sys.stderr)
    where = f"; traceback in {log}" if log else ""
    if internal:
        print(
            "run-trial: internal error (this is a bug in lightning-adapter-compat): "
            f"{failure.describe()}{where}; please report it with that file",
            file=sys.stderr,
        )
    else:
        print(f"run-trial: the trial failed: {failure.describe()}{where}", file=sys.stderr)
    return EXIT_FAILED


def _launched() -> bool:
    """This process is one rank of a torchrun job (``run-trial --nproc`` or the user's own)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "RANK" in os.environ


def _launch_plan(args: argparse.Namespace, config: Any) -> Launch:
    return Launch(
        nproc=args.nproc if args.nproc is not None else max(1, config.slots_per_trial),
        max_restarts=config.max_restarts,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        rdzv_backend=args.rdzv_backend,
        rdzv_endpoint=args.rdzv_endpoint,
        rdzv_id=args.rdzv_id,
    )


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The command line each rank runs: this one without the launcher's flags."""
    worker = [str(args.config)] + ([str(args.context_dir)] if args.context_dir else [])
    for item in args.hparam:
        worker += ["--hparam", item]
    for flag, value in (
        ("--max-length", args.max_length),
        ("--checkpoint-storage", args.checkpoint_storage),
        ("--seed", args.seed),
    ):
        if value is not None:
            worker += [flag, str(value)]
    for flag, on in (("--fresh", args.fresh), ("--json", args.json), ("--plain", args.plain)):
        if on:
            worker.append(flag)
    return worker


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _split_hparam(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise UserInputError(f"--hparam {item!r}: use NAME=VALUE, e.g. --hparam learning_rate=0.01")
    return name.strip(), value


def _seed(text: str) -> int:
    """``--seed``: checked here, before anything is written, against Determined's range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value not in SEED_RANGE:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range: use 0 to {SEED_RANGE.stop - 1}, the range of "
            "reproducibility.experiment_seed"
        )
    return value


def _warning_printer(reporter: object) -> object:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        text = f"{category.__name__}: {message}"
        on_message = getattr(reporter, "on_message", None)
        if on_message is not None:
            on_message(text)
        else:
            print(text, file=sys.stderr)

    return show


def console_main() -> None:
    """The ``run-trial`` command. Everything is written and closed when ``main`` returns, so the
    process ends at once: tearing down torch and Lightning takes longer than a checkpoint, and a
    preempted job should give its slot back quickly."""
    from shim.requirements import require_runtime  # first, so a missing torch is one line

    require_runtime()
    code = main()
    record_exit_status(code, final=_failure.final)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
