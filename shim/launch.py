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
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from shim.errors import UserInputError

__all__ = [
    "STATUS_ENV",
    "Launch",
    "earlier_final_exit",
    "launch",
    "record_exit_status",
    "torchrun_command",
]

STATUS_ENV = "SHIM_LAUNCH_STATUS"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREEMPTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_STATUS_POLL_S = 0.25
_FINAL = "final"


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
        forwarder = _SignalForwarder()  # before torchrun starts: no signal slips past it
        try:
            process = subprocess.Popen(
                torchrun_command(plan, worker_args), env=env, start_new_session=True
            )
            try:
                forwarder.attach(process)
                returncode = _wait(process, pathlib.Path(status_dir), forwarder, plan.nproc)
            finally:
                if process.poll() is None:  # the launcher itself failed: leave no ranks behind
                    process.kill()
                    process.wait()
        finally:
            forwarder.close()
        codes = _latest_attempt_codes(pathlib.Path(status_dir))
        return _outcome(returncode, forwarder.signalled, codes, plan.nproc)


def _wait(
    process: subprocess.Popen[bytes],
    status_dir: pathlib.Path,
    forwarder: _SignalForwarder,
    nproc: int,
) -> int:
    """torchrun's exit status. torchrun relaunches every rank whenever one exits non-zero, so
    it is stopped at once when a relaunch cannot help: a rank's failure is final (the user's
    input, or this package's bug: never restarted), or every rank was preempted."""
    while True:
        try:
            return process.wait(timeout=_STATUS_POLL_S)
        except subprocess.TimeoutExpired:
            latest = _latest_attempt_codes(status_dir)
            preempted = len(latest) == nproc and _all(latest, EXIT_PREEMPTED)
            final = any(status.final for status in latest.values())
            if preempted or final:
                stopped_here = forwarder.stop()  # torchrun stops its ranks before it exits
                returncode = process.wait()
                if stopped_here:  # after torchrun's report of the SIGTERM, which reads like a crash
                    why = "every rank was preempted" if preempted else "no restart can mend it"
                    print(f"run-trial: stopped torchrun: {why}", file=sys.stderr)
                return returncode


def earlier_final_exit() -> int | None:
    """The exit status of a rank of an earlier torchrun attempt of this launch that failed in a
    way no restart mends (2: the user's input; 1: this package's bug), or None. A relaunch then
    exits with it at once instead of failing the same way up to ``max_restarts`` times."""
    folder = os.environ.get(STATUS_ENV)
    if not folder or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        return None
    return _final_exit(_codes(pathlib.Path(folder)).values())


def record_exit_status(code: int, *, final: bool = False) -> None:
    """Leave this rank's exit status where its launcher reads it (nothing without a launcher);
    ``final``: no restart can help (the user's input, or this package's bug)."""
    folder = os.environ.get(STATUS_ENV)
    if not folder:
        return
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    rank = os.environ.get("RANK", "0")
    path = pathlib.Path(folder) / f"attempt{attempt}.rank{rank}"
    hidden = path.with_name(f".{path.name}")  # renamed into place: never read half-written
    try:
        hidden.write_text(f"{code} {_FINAL}" if final else str(code))
        hidden.replace(path)
    except OSError as exc:  # the launcher then reports the run as failed
        print(f"run-trial: cannot leave the exit status in {path}: {exc}", file=sys.stderr)


class _SignalForwarder:
    """SIGINT/SIGTERM to the launcher: one SIGTERM to torchrun, which preempts every rank."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.signalled = False  # the user asked to stop
        self._stopping = False  # torchrun was sent its SIGTERM
        self._previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }

    def attach(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        if self._stopping:  # a signal came while torchrun was starting
            self._terminate()

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self._stopping:
            # torchrun is already stopping the ranks (SIGKILL after its 30 s): a second SIGTERM
            # would interrupt its shutdown and leave ranks running.
            print("run-trial: already stopping; the ranks are checkpointing", file=sys.stderr)
            return
        self.signalled = True
        name = signal.Signals(signum).name
        print(f"run-trial: {name}: preempting every rank within two batches", file=sys.stderr)
        self.stop()

    def stop(self) -> bool:
        """Stop torchrun and its ranks; False when they were already being stopped."""
        if self._stopping:
            return False
        self._stopping = True
        self._terminate()
        return True

    def _terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _RankExit(NamedTuple):
    code: int
    final: bool  # no restart can help


def _outcome(returncode: int, signalled: bool, codes: dict[int, _RankExit], nproc: int) -> int:
    """The launch's exit status from this machine's ranks' own, where they left them."""
    if returncode == 0 or (codes and _all(codes, EXIT_OK)):
        return EXIT_OK
    final = _final_exit(codes.values())
    if final is not None:  # the rank said why on stderr
        return final
    if len(codes) == nproc and _all(codes, EXIT_PREEMPTED):
        return EXIT_PREEMPTED
    if not codes and signalled:
        print("run-trial: interrupted before the ranks began training", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not codes:
        print(
            f"run-trial: torchrun exited with {returncode} before any rank finished: a rank "
            "was killed (out of memory?) or torchrun could not start them (its --rdzv-* flags "
            "or a busy port); see its message above",
            file=sys.stderr,
        )
    return EXIT_FAILED


def _final_exit(statuses: Iterable[_RankExit]) -> int | None:
    """2 when a rank stopped for good on the user's input, 1 for this package's bug, else None."""
    final = {status.code for status in statuses if status.final}
    if not final:
        return None
    return EXIT_USAGE if EXIT_USAGE in final else EXIT_FAILED


def _all(codes: dict[int, _RankExit], code: int) -> bool:
    return all(status.code == code for status in codes.values())


def _latest_attempt_codes(status_dir: pathlib.Path) -> dict[int, _RankExit]:
    """This machine's ranks' exit statuses in torchrun's last attempt, by rank."""
    by_attempt: dict[int, dict[int, _RankExit]] = {}
    for (attempt, rank), status in _codes(status_dir).items():
        by_attempt.setdefault(attempt, {})[rank] = status
    return by_attempt[max(by_attempt)] if by_attempt else {}


def _codes(status_dir: pathlib.Path) -> dict[tuple[int, int], _RankExit]:
    """Every exit status this machine's ranks left, by (attempt, rank)."""
    codes: dict[tuple[int, int], _RankExit] = {}
    for path in status_dir.glob("attempt*.rank*"):
        attempt, _, rank = path.name.removeprefix("attempt").partition(".rank")
        try:
            code, _, final = path.read_text().partition(" ")
            codes[int(attempt), int(rank)] = _RankExit(int(code), final == _FINAL)
        except (ValueError, OSError):  # not one of ours, or gone with the folder
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
