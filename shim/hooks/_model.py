"""The types of the hook table."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Family", "Hook", "Scope", "Status"]


class Status(enum.Enum):
    """What run-trial does with a hook or pattern."""

    SUPPORTED = "supported"  # called as Lightning's Trainer.fit would
    IGNORED = "ignored"  # never called; run-trial warns
    REJECTED = "rejected"  # run-trial raises before training starts
    LEGACY = "legacy"  # runs here, but breaks on Lightning 2.x or has no Core API form


class Scope(enum.Enum):
    """Where the pattern lives, which tells the runtime and the linter how to look for it."""

    MODULE_METHOD = "module method"  # a method defined on a LightningModule subclass
    TRIAL_METHOD = "trial method"  # a method defined on a LightningAdapter subclass
    SIGNATURE = "signature"  # a parameter of a module method
    CALL = "call"  # a call, or an argument of a call, in a module or a trial
    ATTRIBUTE = "attribute"  # an attribute assigned on a module
    LOADERS = "loaders"  # what a validation-loader builder returns
    CONFIG = "config"  # a read of an experiment-config key
    # a Lightning 1.x attribute or method of a module, data module or trainer that 1.6-2.0 removed
    REMOVED_API = "removed api"
    RETURN = "return value"  # a key of a dict that a module's step or epoch-end method returns


@dataclass(frozen=True)
class Hook:
    """One entry of the table; ``code`` is shared by a family of related entries."""

    name: str
    status: Status
    code: str
    title: str
    reason: str
    fix: str
    scope: Scope

    @property
    def reported(self) -> bool:
        """Whether the linter reports this entry (everything but SUPPORTED)."""
        return self.status is not Status.SUPPORTED


@dataclass(frozen=True)
class Family:
    """Entries that share a code, a status, a reason and a fix (how the table is written)."""

    code: str
    title: str
    status: Status
    names: tuple[str, ...]
    reason: str
    fix: str = ""
    scope: Scope = Scope.MODULE_METHOD

    def hooks(self) -> tuple[Hook, ...]:
        return tuple(
            Hook(name, self.status, self.code, self.title, self.reason, self.fix, self.scope)
            for name in self.names
        )
