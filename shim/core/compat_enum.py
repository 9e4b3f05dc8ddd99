"""Enums that also accept the same-valued members of ``determined.core``'s enums."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["CompatEnum"]


class CompatEnum(enum.Enum):
    """``Mode(det.core.Mode.X)`` gives ``Mode.X``: scripts may pass either package's members."""

    @classmethod
    def _missing_(cls, value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return cls._value2member_map_.get(value.value)
        return None
