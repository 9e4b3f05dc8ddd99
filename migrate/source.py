"""Read and parse a Python file without running it."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import libcst as cst

from .errors import SourceError

__all__ = ["decode", "parse", "read_source"]


def decode(data: bytes, path: str) -> str:
    """Decode source bytes as Python does: a PEP 263 coding cookie or BOM, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = getattr(exc, "msg", None) or str(exc)
        raise SourceError(path, f"cannot decode the file ({reason}); save it as UTF-8") from None


def read_source(path: Path | str) -> str:
    """The text of ``path``; unreadable or undecodable files raise :class:`SourceError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(str(path), f"cannot read the file: {exc.strerror or exc}") from None
    return decode(data, str(path))


def parse(text: str, path: str) -> cst.Module:
    """Parse ``text``; a syntax error raises :class:`SourceError` at its line and column."""
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        raise _syntax_error(text, path, exc) from None
    except RecursionError:
        raise SourceError(path, "the file is nested too deeply to parse") from None


def _syntax_error(text: str, path: str, exc: cst.ParserSyntaxError) -> SourceError:
    # Python's own parser words the error better and places it more precisely than libcst.
    try:
        ast.parse(text, path)
    except SyntaxError as py_exc:
        return SourceError(path, f"syntax error: {py_exc.msg}", py_exc.lineno, py_exc.offset)
    except (ValueError, RecursionError):
        pass
    return SourceError(path, f"syntax error: {exc.message}", exc.editor_line, exc.editor_column)
