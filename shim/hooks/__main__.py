"""``python -m shim.hooks``: print the table, or check or rewrite the README's copy of it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import render_markdown_table, sync_readme

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shim.hooks",
        description="Print the hook compatibility table, or check or rewrite the README's copy.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write-readme", action="store_true", help="rewrite the README block")
    action.add_argument("--check-readme", action="store_true", help="exit 1 if it is stale")
    parser.add_argument(
        "--readme", type=Path, default=Path(__file__).parents[2] / "README.md", help="README path"
    )
    args = parser.parse_args(argv)
    if not (args.write_readme or args.check_readme):
        sys.stdout.write(render_markdown_table())
        return 0
    try:
        current = sync_readme(args.readme, write=args.write_readme)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if current or args.write_readme:
        return 0
    print(
        f"{args.readme}: the hook table is stale; run `python -m shim.hooks --write-readme`",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
