"""Which local checkpoints to keep: Determined's ``save_trial_latest`` and ``save_trial_best``."""

from __future__ import annotations

from typing import Any

__all__ = ["checkpoints_to_delete"]


def checkpoints_to_delete(
    records: list[dict[str, Any]], *, keep_latest: int, keep_best: int, smaller_is_better: bool
) -> list[str]:
    """Storage ids outside the union of the latest ``keep_latest`` and the best ``keep_best``.

    ``records`` are ``{"uuid", "steps", "metric"}`` in the order they were written; a record
    without a metric can only be kept as one of the latest.
    """
    latest = (
        {r["uuid"] for r in records[len(records) - keep_latest :]} if keep_latest > 0 else set()
    )
    scored = [r for r in records if r.get("metric") is not None]
    scored.sort(key=lambda r: r["metric"], reverse=not smaller_is_better)
    best = {r["uuid"] for r in scored[:keep_best]} if keep_best > 0 else set()
    return [r["uuid"] for r in records if r["uuid"] not in latest | best]
