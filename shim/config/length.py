"""Training lengths and periods in Determined's units: ``{batches|epochs|records: n}``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from shim.config._checks import Validator, unknown_key
from shim.config._where import KeyPath, Where, format_key
from shim.errors import ShimError

__all__ = ["NEVER", "UNITS", "Length", "LengthUnit", "check_length"]

LengthUnit = Literal["batches", "epochs", "records"]
UNITS: tuple[LengthUnit, ...] = ("batches", "epochs", "records")

# A period that never comes round; Determined's TrainUnit uses sys.maxsize the same way.
NEVER = sys.maxsize


@dataclass(frozen=True)
class Length:
    """A length or period as the experiment config gives it; ``value < 1`` means never."""

    unit: LengthUnit
    value: int

    @classmethod
    def from_config(cls, raw: int | Mapping[str, int]) -> Length:
        """From a value ``check_length`` accepted; a plain int counts batches."""
        if isinstance(raw, int):
            return cls("batches", raw)
        ((unit, value),) = raw.items()
        return cls(cast(LengthUnit, unit), value)

    @property
    def never(self) -> bool:
        return self.value < 1

    def to_batches(self, batches_per_epoch: int, global_batch_size: int) -> int:
        """The length in batches, as Determined's ``TrainUnit._from_values`` reckons it:
        epochs count ``batches_per_epoch`` each, records are ``max(records // gbs, 1)``
        batches; ``NEVER`` when the value is below 1."""
        if self.never:
            return NEVER
        if self.unit == "batches":
            return self.value
        if self.unit == "epochs":
            if batches_per_epoch < 1:
                raise ShimError(
                    f"cannot count {self} in batches: the training data loader has no batches; "
                    "give it data or set the length in batches"
                )
            return self.value * batches_per_epoch
        if global_batch_size < 1:
            raise ShimError(
                f"cannot count {self} in batches with global_batch_size {global_batch_size}; "
                "set hyperparameters.global_batch_size to an int >= 1"
            )
        return max(self.value // global_batch_size, 1)

    def to_dict(self) -> dict[str, int]:
        return {self.unit: self.value}

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


def check_length(minimum: int, *, keep_int: bool) -> Validator:
    """A validator for a length field: ``{unit: int >= minimum}`` or a plain int (batches).

    ``keep_int`` keeps a plain int as given (``searcher.max_length``, whose plain form Determined
    reports with no unit); otherwise it becomes ``{batches: n}``, the only form Determined's own
    code reads for periods.
    """

    def check(value: Any, path: KeyPath, where: Where) -> Any:
        if _is_int(value):
            _check_value(value, minimum, path, where)
            return value if keep_int else {"batches": value}
        if not isinstance(value, Mapping) or len(value) != 1:
            raise where.error(path, _expected(path, value))
        ((unit, count),) = value.items()
        if unit not in UNITS:
            raise unknown_key(unit, path, where, UNITS)
        if not _is_int(count):
            raise where.error((*path, unit), _expected(path, value))
        _check_value(count, minimum, (*path, unit), where)
        return {unit: count}

    return check


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(value: int, minimum: int, path: KeyPath, where: Where) -> None:
    if value < minimum:
        never = " (0 means never)" if minimum < 1 else ""
        raise where.error(
            path, f"{format_key(path)!r} must be an int >= {minimum}{never}, got {value!r}"
        )


def _expected(path: KeyPath, value: Any) -> str:
    return (
        f"{format_key(path)!r} must be a mapping with one of batches, epochs, records "
        f"and an int, e.g. {{epochs: 2}}, or a plain int of batches; got {value!r}"
    )
