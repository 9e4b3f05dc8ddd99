"""After every batch: stop here? The training loop's per-batch preemption and stop check.

In one process this is ``should_preempt()`` and the trial's own stop request, exactly at the batch
where they turn True. Under several ranks every rank must stop at the same batch, so the ranks have
to agree, and a blocking collective after every batch costs a round trip that a hand-written DDP
loop does not pay (about 0.5 ms on gloo, a twentieth of a small model's step). So the agreement
runs one batch behind: after batch k each rank starts an asynchronous all_reduce of its flags and
reads the one it started after batch k-1, which completed while batch k trained (batch k's DDP
gradient reduction cannot finish before every rank has started it). Every rank reads the same
answer at the same batch, so they still stop together, checkpoint the same step, and resume
exactly.

What that changes under several ranks:
- A preemption signal (to the chief) stops every rank after the batch that follows the one where
  one process alone would have stopped: a signal arrives at a random moment anyway.
- A stop request (``set_stop_requested``, Lightning's ``trainer.should_stop``) made on every rank
  at the same batch stops there, as in one process and as Lightning's DDP runs: the ranks that see
  their own request wait for that batch's answer at once (the only blocking case), and it says
  every rank asked. A request on some ranks only stops every rank one batch later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.core.preempt import PreemptContext

__all__ = ["BatchPoll"]

_Answer = Callable[[], tuple[bool, ...]]


def _unused(*flags: bool) -> _Answer:
    raise AssertionError("the pipelined poll is only chosen with an asynchronous collective")


class BatchPoll:
    """``poll(stop_requested) -> (preempted, stopped)`` after every batch; ``drain()`` after the
    loop. Every rank must call it after the same batches."""

    def __init__(self, preempt: Any, dist: Any) -> None:
        """``preempt`` and ``dist``: a context's (``shim.core`` or ``determined.core``)."""
        self._preempt = preempt
        self._dist = dist
        start = getattr(dist, "_start_any_flags", None)
        pipelined = (
            isinstance(preempt, PreemptContext)
            and preempt._signal_for_agreement() is not None
            and start is not None
            and dist.size > 1
        )
        self._start: Callable[..., _Answer] = start if pipelined and start else _unused
        self.poll: Callable[[bool], tuple[bool, bool]] = (
            self._pipelined if pipelined else self._at_once
        )
        self._pending: _Answer | None = None

    def _at_once(self, stop: bool) -> tuple[bool, bool]:
        """One process, or a context without the asynchronous path (``determined.core``)."""
        if self._dist.size > 1:  # one rank's request stops every rank, or the others would hang
            stop = any(self._dist.allgather(stop))
        preempted = bool(self._preempt.should_preempt())  # on every rank: it is a collective
        return preempted and not stop, stop  # a stop request wins, as under several ranks

    def _pipelined(self, stop: bool) -> tuple[bool, bool]:
        # The third flag tells whether some rank did not ask to stop.
        signalled = bool(self._preempt._signal_for_agreement())
        previous, self._pending = self._pending, self._start(signalled, stop, not stop)
        if previous is not None:
            was_signalled, was_stopped, _ = previous()
            if was_signalled or was_stopped:
                return self._decided(was_signalled, was_stopped)
        if stop:
            _, _, some_did_not = self._pending()
            if not some_did_not:  # every rank asked at this batch: stop here, as one process does
                return self._decided(False, True)
        return False, False

    def _decided(self, signalled: bool, stopped: bool) -> tuple[bool, bool]:
        self.drain()
        if signalled and not stopped:
            self._preempt.acknowledge_preemption_signal()
        return signalled and not stopped, stopped

    def drain(self) -> None:
        """Wait for the collective still in flight (every rank started it)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending()
