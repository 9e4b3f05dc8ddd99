"""The one error base of the runtime; every error a user can cause derives from it."""

__all__ = ["ShimError"]


class ShimError(Exception):
    """An error the user can fix: the message says what, where and what to do."""
