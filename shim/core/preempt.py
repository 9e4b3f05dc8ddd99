"""Signal-driven preemption with ``determined.core.PreemptContext``'s API.

SIGTERM (Slurm, Kubernetes, ``det`` kill) and SIGINT (Ctrl-C) only set a flag; the training loop
asks ``should_preempt()`` at a batch boundary and the chief's answer is broadcast, so every rank
stops at the same step. A second signal of the same kind falls through to the previous handler, so
a second Ctrl-C still interrupts at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import types
from collections.abc import Callable
from typing import Any

from shim.core.compat_enum import CompatEnum
from shim.core.distributed import DistributedContext
from shim.core.errors import ChiefOnlyError

__all__ = ["PreemptContext", "PreemptMode"]

logger = logging.getLogger("shim.core")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_Handler = Callable[[int, types.FrameType | None], Any] | int | None


class PreemptMode(CompatEnum):
    WorkersAskChief = "WORKERS_ASK_CHIEF"
    ChiefOnly = "CHIEF_ONLY"
    WorkersAskMaster = "WORKERS_ASK_MASTER"


class PreemptContext:
    """``should_preempt()`` turns True once this process (by default: the chief) got a signal."""

    def __init__(
        self,
        dist: DistributedContext | Any,
        preempt_mode: PreemptMode = PreemptMode.WorkersAskChief,
    ) -> None:
        self._dist = dist
        self._preempt_mode = PreemptMode(preempt_mode)
        self._started = False
        self._signalled: int | None = None
        self._received: set[int] = set()
        self._previous: dict[int, _Handler] = {}
        self._acknowledged = False

    def start(self) -> PreemptContext:
        if self._started:
            raise RuntimeError("you cannot call PreemptContext.start() multiple times")
        self._started = True
        # Handlers can only be set from the main thread; elsewhere preemption comes from
        # request_preemption() alone.
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        else:
            logger.warning(
                "PreemptContext started off the main thread: SIGTERM/SIGINT cannot be caught "
                "here, so only request_preemption() preempts"
            )
        return self

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> PreemptContext:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if signum not in self._received:
            self._received.add(signum)
            if self._signalled is None:
                self._signalled = signum
            return
        if signum == signal.SIGTERM and "TORCHELASTIC_RUN_ID" in os.environ:
            # A torchrun rank may get the same SIGTERM twice (Slurm's scancel signals every
            # process, and torchrun forwards its own); torchrun's SIGKILL 30 s later is the
            # hard stop, so the checkpoint in progress is kept.
            logger.info("SIGTERM again: still stopping at the agreed batch")
            return
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # Default action (terminate) for a repeated SIGTERM.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def request_preemption(self) -> None:
        """Ask for preemption as a signal would (for tests and embedding applications)."""
        if self._signalled is None:
            self._signalled = signal.SIGTERM

    def should_preempt(self, auto_ack: bool = True) -> bool:
        if not self._started:
            raise RuntimeError(
                "you cannot call PreemptContext.should_preempt() before PreemptContext.start()"
            )
        local = self._signalled is not None
        if self._preempt_mode == PreemptMode.WorkersAskMaster:
            out = local
        elif self._dist.rank == 0:
            out = local
            if self._preempt_mode == PreemptMode.WorkersAskChief:
                out = _broadcast_flag(self._dist, out)
        elif self._preempt_mode == PreemptMode.ChiefOnly:
            raise ChiefOnlyError(
                "PreemptContext was configured with preempt_mode=ChiefOnly but "
                f".should_preempt() was called from non-chief worker of rank={self._dist.rank}"
            )
        else:
            out = _broadcast_flag(self._dist, False)
        if out and auto_ack and not self._acknowledged:
            self.acknowledge_preemption_signal()
        return out

    def _signal_for_agreement(self) -> bool | None:
        """What this process brings to a poll that agrees on preemption by reducing every
        rank's flag (``shim.core.batch_poll``): under ``WorkersAskChief`` the chief's signal and
        False elsewhere, as in ``should_preempt()``; None in the other modes."""
        if self._preempt_mode != PreemptMode.WorkersAskChief:
            return None
        return self._dist.rank == 0 and self._signalled is not None

    def acknowledge_preemption_signal(self) -> None:
        """Record that the job will exit to be resumed later (there is no master to tell)."""
        if not self._acknowledged:
            self._acknowledged = True
            name = signal.Signals(self._signalled).name if self._signalled else "a request"
            logger.info("preemption acknowledged (%s); exiting at this step to resume later", name)


def _broadcast_flag(dist: Any, flag: bool) -> bool:
    # A determined.core.DistributedContext (ZMQ) may be passed in too; it has no tensor path.
    fast = getattr(dist, "_broadcast_flag", None)
    return bool(fast(flag)) if fast is not None else bool(dist.broadcast(flag))
