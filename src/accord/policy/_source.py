"""Cutting Cedar policy text into one piece per policy, with the line each piece starts on.

Cedar reports problems by positional policy id (``policy3``) and without positions, and its JSON
form drops comments and layout. Knowing where each policy starts lets diagnostics and
``accord policy explain`` point at the operator's own text. In Cedar's policy grammar a ``;``
outside a string or a ``//`` comment ends a policy, which is all this needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourcePiece:
    """One policy's text, from its first annotation or effect to its ``;``."""

    text: str
    line: int


def split_policies(text: str) -> tuple[list[SourcePiece], SourcePiece | None]:
    """The pieces of ``text`` in order, and any unterminated text left after the last ``;``."""
    pieces: list[SourcePiece] = []
    start: int | None = None
    start_line = 1
    line = 1
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\n":
            line += 1
        elif char == "/" and text.startswith("//", index):
            end = text.find("\n", index)
            index = length if end < 0 else end
            continue
        elif not char.isspace():
            if start is None:
                start, start_line = index, line
            if char == '"':
                end = _skip_string(text, index)
                line += text.count("\n", index, end)
                index = end
                continue
            if char == ";":
                pieces.append(SourcePiece(text[start : index + 1], start_line))
                start = None
        index += 1
    rest = None if start is None else SourcePiece(text[start:].rstrip(), start_line)
    return pieces, rest


def _skip_string(text: str, index: int) -> int:
    """The index just past the string literal opening at ``index`` (or the end of the text)."""
    index += 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index + 1
        index += 1
    return index
