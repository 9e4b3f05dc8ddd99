"""``DistributedContext`` over ``torch.distributed``, with Determined 0.38's API.

Determined coordinates ranks over ZMQ; here the same pickled-object collectives run on a gloo
group of ``torch.distributed``, so they work beside an NCCL training group and need no ports.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from shim.core.errors import DistributedSetupError

__all__ = ["DistributedContext", "DummyDistributedContext"]

_TORCHRUN_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
)


def _attempt_store(rank: int, size: int, timeout: datetime.timedelta) -> dist.Store:
    """The ``env://`` store, with keys of their own for each torchrun attempt.

    A relaunch under an elastic rendezvous may reuse the agent's store; the previous attempt's
    gloo addresses are still in it, and a rank that reads one before its peer rewrites it
    connects to a dead process.
    """
    store, _, _ = next(dist.rendezvous("env://", rank, size, timeout=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"shim_attempt_{attempt}", store)


class DistributedContext:
    """Rank information and object collectives for one process of a (possibly) distributed job.

    ``pub_port``, ``pull_port``, ``port_offset`` and ``force_tcp`` are accepted for signature
    compatibility with ``determined.core.DistributedContext`` and unused: there is no ZMQ here.
    """

    def __init__(
        self,
        *,
        rank: int,
        size: int,
        local_rank: int,
        local_size: int,
        cross_rank: int,
        cross_size: int,
        chief_ip: str | None = None,
        pub_port: int = 12360,
        pull_port: int = 12376,
        port_offset: int = 0,
        force_tcp: bool = False,
    ) -> None:
        _check_ranks(rank, size, local_rank, local_size, cross_rank, cross_size)
        self.rank = rank
        self.size = size
        self.local_rank = local_rank
        self.local_size = local_size
        self.cross_rank = cross_rank
        self.cross_size = cross_size
        self._chief_ip = chief_ip
        self._is_chief = rank == 0
        self._closed = False
        self._owns_process_group = False
        self._group: Any = None
        self._local_group: Any = None
        self._local_chief_global_rank = 0
        if size > 1:
            self._init_groups()

    @classmethod
    def from_torch_distributed(cls, chief_ip: str | None = None) -> DistributedContext:
        """Build from the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...)."""
        missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
        if missing:
            raise DistributedSetupError(
                f"from_torch_distributed() needs the torchrun environment; missing {missing}. "
                "Launch with `torchrun --nproc-per-node N script.py`"
            )
        return cls(
            rank=int(os.environ["RANK"]),
            size=int(os.environ["WORLD_SIZE"]),
            local_rank=int(os.environ["LOCAL_RANK"]),
            local_size=int(os.environ["LOCAL_WORLD_SIZE"]),
            cross_rank=int(os.environ["GROUP_RANK"]),
            cross_size=int(os.environ["GROUP_WORLD_SIZE"]),
            chief_ip=chief_ip or os.environ.get("DET_CHIEF_IP"),
        )

    def _init_groups(self) -> None:
        if not dist.is_initialized():
            if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
                raise DistributedSetupError(
                    f"rank {self.rank} of {self.size}: torch.distributed is not initialized and "
                    "MASTER_ADDR/MASTER_PORT are unset; launch with torchrun or call "
                    "torch.distributed.init_process_group() before building the context"
                )
            # NCCL for CUDA tensors (gradients) where there are GPUs, gloo for everything else.
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            timeout = datetime.timedelta(minutes=30)
            dist.init_process_group(
                backend,
                store=_attempt_store(self.rank, self.size, timeout),
                rank=self.rank,
                world_size=self.size,
                timeout=timeout,
            )
            self._owns_process_group = True
        if (dist.get_rank(), dist.get_world_size()) != (self.rank, self.size):
            raise DistributedSetupError(
                f"DistributedContext says rank {self.rank} of {self.size} but torch.distributed "
                f"says rank {dist.get_rank()} of {dist.get_world_size()}; build it with "
                "DistributedContext.from_torch_distributed()"
            )
        self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        # Every rank must create every node's group, in the same order.
        nodes: list[tuple[int, int]] = [(0, 0)] * self.size
        dist.all_gather_object(nodes, (self.cross_rank, self.rank), group=self._group)
        for node in sorted({cross for cross, _ in nodes}):
            members = sorted(rank for cross, rank in nodes if cross == node)
            group = dist.new_group(members, backend="gloo")
            if node == self.cross_rank:
                self._local_group = group
                self._local_chief_global_rank = members[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_process_group and dist.is_initialized():
            dist.destroy_process_group()

    def get_rank(self) -> int:
        return self.rank

    def get_local_rank(self) -> int:
        return self.local_rank

    def get_size(self) -> int:
        return self.size

    def get_num_agents(self) -> int:
        return self.cross_size

    def gather(self, stuff: Any) -> list | None:
        """The chief gets every rank's ``stuff`` in rank order; other ranks get None."""
        if self.size < 2:
            return [stuff]
        out: list[Any] | None = [None] * self.size if self._is_chief else None
        dist.gather_object(stuff, out, dst=0, group=self._group)
        return out

    def gather_local(self, stuff: Any) -> list | None:
        if self.local_size < 2:
            return [stuff]
        out: list[Any] | None = [None] * self.local_size if self.local_rank == 0 else None
        dist.gather_object(stuff, out, dst=self._local_chief_global_rank, group=self._local_group)
        return out

    def allgather(self, stuff: Any) -> list:
        if self.size < 2:
            return [stuff]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, stuff, group=self._group)
        return out

    def allgather_local(self, stuff: Any) -> list:
        if self.local_size < 2:
            return [stuff]
        out: list[Any] = [None] * self.local_size
        dist.all_gather_object(out, stuff, group=self._local_group)
        return out

    def broadcast(self, stuff: Any) -> Any:
        """Every rank gets the chief's ``stuff``."""
        if self.size < 2:
            return stuff
        box = [stuff]
        dist.broadcast_object_list(box, src=0, group=self._group)
        return box[0]

    def broadcast_local(self, stuff: Any = None) -> Any:
        if self.local_size < 2:
            return stuff
        box = [stuff]
        dist.broadcast_object_list(box, src=self._local_chief_global_rank, group=self._local_group)
        return box[0]

    def _start_any_flags(self, *flags: bool) -> Callable[[], tuple[bool, ...]]:
        """Start asking, for each position, whether any rank's boolean there is set (one small
        tensor all_reduce) without waiting for it; the returned function waits and answers.

        Every rank must start the same number of these in the same order, as for any
        collective."""
        if self.size < 2:
            return lambda: flags
        tensor = torch.tensor(flags, dtype=torch.uint8)
        work = dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        answer: list[tuple[bool, ...]] = []

        def wait() -> tuple[bool, ...]:
            if not answer:
                work.wait()
                answer.append(tuple(bool(v) for v in tensor.tolist()))
            return answer[0]

        return wait

    def _broadcast_flag(self, flag: bool) -> bool:
        """The chief's boolean on every rank, as one small tensor collective (per-batch cheap)."""
        if self.size < 2:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.uint8)
        dist.broadcast(tensor, src=0, group=self._group)
        return bool(tensor.item())


class DummyDistributedContext(DistributedContext):
    """The single-process context: rank 0 of 1."""

    def __init__(self) -> None:
        super().__init__(rank=0, size=1, local_rank=0, local_size=1, cross_rank=0, cross_size=1)


def _check_ranks(
    rank: int, size: int, local_rank: int, local_size: int, cross_rank: int, cross_size: int
) -> None:
    values = {
        "rank": rank,
        "size": size,
        "local_rank": local_rank,
        "local_size": local_size,
        "cross_rank": cross_rank,
        "cross_size": cross_size,
    }
    bad = [name for name, value in values.items() if not isinstance(value, int) or value < 0]
    if bad:
        raise DistributedSetupError(f"DistributedContext needs non-negative ints for {bad}")
    if not (rank < size and local_rank < local_size <= size and cross_rank < cross_size):
        raise DistributedSetupError(
            f"inconsistent ranks {values}: need rank < size, local_rank < local_size <= size "
            "and cross_rank < cross_size"
        )
