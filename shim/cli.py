"""``run-trial``: runs a legacy LightningAdapter trial (the runner lands with its own issue)."""

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    print(
        "run-trial: not implemented yet; run a Core API script on shim.core meanwhile "
        "(see fixtures/core_api_example/train.py)",
        file=sys.stderr,
    )
    return 2
