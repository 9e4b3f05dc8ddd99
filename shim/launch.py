"""``run-trial --nproc N``: several ranks of one run through ``torch.distributed.run`` (torchrun).

The launcher starts torchrun in a session of its own, so a Ctrl-C on the terminal reaches only the
launcher; it turns SIGINT and SIGTERM into one SIGTERM to torchrun, which sends it on to every
rank, where the chief's signal decides the preemption and every rank learns it one batch later
(``shim.core.batch_poll``: every rank stops at the same batch). torchrun also stops the other
ranks when one dies and relaunches them all, up to ``max_restarts``; each relaunch resumes from
the newest checkpoint. Each rank leaves its exit status in a folder the launcher names
(``SHIM_LAUNCH_STATUS``), so the launcher exits with the trial's outcome rather than torchrun's.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import types
from collections.abc import Sequence

from shim.errors import UserInputError

__all__ = [
    "STATUS_ENV",
    "Launch",
    "earlier_attempt_stopped_on_input",
    "launch",
    "record_exit_status",
    "torchrun_command",
]

STATUS_ENV = "SHIM_LAUNCH_STATUS"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREEMPTED = 0, 1, 2, 3
_STATUS_POLL_S = 0.25


@dataclasses.dataclass(frozen=True)
class Launch:
    """How many ranks, on how many machines, meeting where."""

    nproc: int
    max_restarts: int
    nnodes: int | None = None
    node_rank: int | None = None
    rdzv_backend: str | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None

    @property
    def several_machines(self) -> bool:
        return (self.nnodes or 1) > 1

    @property
    def distributed(self) -> bool:
        """One process on one machine runs in-process, as without a launcher."""
        return self.nproc > 1 or self.several_machines

    def check(self) -> None:
        """The flags' own consistency (``UserInputError`` names the flag and the fix)."""
        if self.node_rank is not None and self.nnodes is None:
            raise UserInputError(
                f"--node-rank {self.node_rank} needs --nnodes: give the number of machines too"
            )
        if self.nnodes is not None and self.node_rank is not None and self.node_rank >= self.nnodes:
            raise UserInputError(
                f"--node-rank {self.node_rank} is not below --nnodes {self.nnodes}: "
                f"number the machines 0 to {self.nnodes - 1}"
            )
        if self.several_machines and self.rdzv_endpoint is None:
            raise UserInputError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, the same on every "
                "machine (one of them listens there)"
            )
        rendezvous = self.rdzv_backend or self.rdzv_endpoint or self.rdzv_id
        if rendezvous and not self.distributed:
            raise UserInputError(
                "--rdzv-backend/--rdzv-endpoint/--rdzv-id meet other ranks, but this run has "
                "one process: give --nproc N (or --nnodes N) as well"
            )


def torchrun_command(plan: Launch, worker_args: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run ... -m shim.cli WORKER_ARGS``."""
    command = [sys.executable, "-m", "torch.distributed.run"]
    command += ["--nproc-per-node", str(plan.nproc), "--max-restarts", str(plan.max_restarts)]
    if plan.nnodes is not None:
        command += ["--nnodes", str(plan.nnodes)]
    if plan.node_rank is not None:
        command += ["--node-rank", str(plan.node_rank)]
    for flag, value in (
        ("--rdzv-backend", plan.rdzv_backend),
        ("--rdzv-endpoint", plan.rdzv_endpoint),
        ("--rdzv-id", plan.rdzv_id),
    ):
        if value is not None:
            command += [flag, value]
    if not plan.several_machines and plan.rdzv_endpoint is None and plan.rdzv_backend is None:
        # One machine: torchrun picks a free local port for the rendezvous.
        command.append("--standalone")
    return [*command, "-m", "shim.cli", *worker_args]


def launch(plan: Launch, worker_args: Sequence[str]) -> int:
    """Run the ranks; the exit status is the trial's outcome (see ``shim.cli``)."""
    plan.check()
    _check_devices(plan.nproc)
    with tempfile.TemporaryDirectory(prefix="run-trial-ranks-") as status_dir:
        env = {**os.environ, STATUS_ENV: status_dir}
        if plan.nproc > 1:
            # torchrun's own default for several ranks per machine, set here so that torchrun
            # does not print its banner about it.
            env.setdefault("OMP_NUM_THREADS", "1")
        threads = env.get("OMP_NUM_THREADS", "torch's default")
        backend = "nccl" if _cuda_available() else "gloo"
        print(
            f"run-trial: {plan.nproc} rank(s) on this machine through torchrun ({backend}, "
            f"OMP_NUM_THREADS={threads}), up to {plan.max_restarts} restart(s)",
            file=sys.stderr,
            flush=True,
        )
        process = subprocess.Popen(
            torchrun_command(plan, worker_args), env=env, start_new_session=True
        )
        forwarder = _SignalForwarder(process)
        try:
            returncode = _wait(process, pathlib.Path(status_dir))
        finally:
            forwarder.close()
            if process.poll() is None:  # the launcher itself failed: leave no ranks behind
                process.kill()
                process.wait()
        return _outcome(returncode, forwarder.forwarded, pathlib.Path(status_dir))


def _wait(process: subprocess.Popen[bytes], status_dir: pathlib.Path) -> int:
    """torchrun's exit status; sooner when a rank stopped on the user's input, which no restart
    can mend (exit 2 means no restart): then torchrun and every rank are stopped at once."""
    while True:
        try:
            return process.wait(timeout=_STATUS_POLL_S)
        except subprocess.TimeoutExpired:
            if EXIT_USAGE in _codes(status_dir).values():
                process.terminate()  # torchrun stops its ranks before it exits
                process.wait()
                return EXIT_USAGE


def earlier_attempt_stopped_on_input() -> bool:
    """Whether a rank of an earlier torchrun attempt of this launch exited 2 (the user's input):
    a relaunch then stops at once instead of failing the same way up to ``max_restarts`` times."""
    folder = os.environ.get(STATUS_ENV)
    if not folder or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        return False
    return EXIT_USAGE in _codes(pathlib.Path(folder)).values()


def record_exit_status(code: int) -> None:
    """Leave this rank's exit status where its launcher reads it (nothing without a launcher)."""
    folder = os.environ.get(STATUS_ENV)
    if not folder:
        return
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    rank = os.environ.get("RANK", "0")
    path = pathlib.Path(folder) / f"attempt{attempt}.rank{rank}"
    try:
        path.write_text(str(code))
    except OSError as exc:  # the launcher then reports the run as failed
        print(f"run-trial: cannot leave the exit status in {path}: {exc}", file=sys.stderr)


class _SignalForwarder:
    """SIGINT/SIGTERM to the launcher: one SIGTERM to torchrun, which preempts every rank."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.forwarded = False
        self._previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.forwarded:
            # torchrun is already stopping the ranks (SIGKILL after its 30 s): a second SIGTERM
            # would interrupt its shutdown and leave ranks running.
            print("run-trial: already stopping; the ranks are checkpointing", file=sys.stderr)
            return
        self.forwarded = True
        name = signal.Signals(signum).name
        print(f"run-trial: {name}: preempting every rank within two batches", file=sys.stderr)
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _outcome(returncode: int, signalled: bool, status_dir: pathlib.Path) -> int:
    if returncode == 0:
        return EXIT_OK
    codes = _latest_attempt_codes(status_dir)
    if signalled and codes and all(code == EXIT_PREEMPTED for code in codes.values()):
        return EXIT_PREEMPTED
    if EXIT_USAGE in codes.values():
        return EXIT_USAGE
    if not codes:
        print(
            f"run-trial: torchrun exited with {returncode} before any rank finished; see its "
            "message above",
            file=sys.stderr,
        )
    return EXIT_FAILED


def _latest_attempt_codes(status_dir: pathlib.Path) -> dict[int, int]:
    """This machine's ranks' exit statuses in torchrun's last attempt."""
    by_attempt: dict[int, dict[int, int]] = {}
    for (attempt, rank), code in _codes(status_dir).items():
        by_attempt.setdefault(attempt, {})[rank] = code
    return by_attempt[max(by_attempt)] if by_attempt else {}


def _codes(status_dir: pathlib.Path) -> dict[tuple[int, int], int]:
    """Every exit status this machine's ranks left, by (attempt, rank)."""
    codes: dict[tuple[int, int], int] = {}
    for path in status_dir.glob("attempt*.rank*"):
        attempt, _, rank = path.name.removeprefix("attempt").partition(".rank")
        try:
            codes[int(attempt), int(rank)] = int(path.read_text())
        except (ValueError, OSError):  # being written, or gone with the folder
            continue
    return codes


def _cuda_available() -> bool:
    # Without an NVIDIA driver there is no CUDA; importing torch to learn that costs seconds.
    if not any(pathlib.Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl")):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _check_devices(nproc: int) -> None:
    """NCCL needs a GPU of its own for every rank on a machine."""
    if not _cuda_available():
        return
    import torch

    count = torch.cuda.device_count()
    if nproc > count:
        raise UserInputError(
            f"--nproc {nproc} ranks but {count} GPU(s) here: each rank needs a GPU of its own "
            f"(NCCL); use --nproc {count} or fewer, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to "
            "run on the CPU"
        )
