"""Assertions on lint diagnostics, shared by the journey-language tests."""

from __future__ import annotations

from accord.errors import Diagnostic


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    """The single diagnostic in ``diagnostics`` (fails, listing them, if there are others)."""
    assert len(diagnostics) == 1, "\n".join(d.render() for d in diagnostics)
    return diagnostics[0]


def assert_error_at(diagnostic: Diagnostic, file: str, line: int, column: int) -> None:
    """An error located at ``file:line:column`` that carries a hint."""
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == (file, line, column), (
        diagnostic.render()
    )
    assert diagnostic.severity == "error"
    assert diagnostic.hint, f"no hint: {diagnostic.render()}"
