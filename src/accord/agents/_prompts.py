"""The prompt catalogue: prompt templates in files, known by name and pinned by content hash.

A prompt file ``NAME.md`` holds the instructions (a Jinja template, rendered in a sandbox with
the agent's redacted input as ``input``). A line ``<!-- user -->`` starts the user message
template; without it the user message is the input as canonical JSON. The digest is the
SHA-256 of the file's bytes, so a spec that pins ``NAME@sha256:HEX`` refuses any other text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from accord.core import canonical_dumps

USER_MARKER = "<!-- user -->"
SUFFIXES = (".md", ".txt", ".j2")


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt of the catalogue."""

    name: str
    text: str
    digest: str


class PromptError(Exception):
    """A prompt is missing, does not match its pin, or does not render."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def prompt_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PromptCatalogue:
    """The prompts in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.iterdir() if p.suffix in SUFFIXES)

    def get(self, name: str, *, pin: str | None = None) -> Prompt:
        """The prompt ``name``; with ``pin`` (a hex prefix of its digest), only that text.

        Raises:
            PromptError: no such prompt, or its text changed since it was pinned.
        """
        for suffix in SUFFIXES:
            path = self.directory / f"{name}{suffix}"
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                break
        else:
            known = ", ".join(self.names()) or "none"
            raise PromptError(
                f"no prompt {name!r} in {self.directory}",
                hint=f"prompts there: {known}; a prompt is a file NAME.md",
            )
        found = prompt_digest(text)
        if pin is not None and not found.startswith(pin.lower()):
            raise PromptError(
                f"prompt {name!r} is pinned to sha256:{pin} but its text now hashes to "
                f"sha256:{found[:16]}",
                hint="a changed prompt is a new agent version: update the pin and the version",
            )
        return Prompt(name, text, found)


_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)


def check_template(text: str) -> str | None:
    """The syntax problem of a prompt template, or None."""
    try:
        _ENVIRONMENT.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def render_prompt(text: str, variables: dict[str, Any]) -> tuple[str, str]:
    """The instructions and the user message for ``variables``.

    Raises:
        PromptError: the template refers to something the input lacks, or fails to render.
    """
    instructions, marker, user = text.partition(USER_MARKER)
    try:
        rendered = _ENVIRONMENT.from_string(instructions).render(**variables).strip()
        if marker:
            message = _ENVIRONMENT.from_string(user).render(**variables).strip()
        else:
            message = canonical_dumps(variables.get("input", {}))
    except jinja2.UndefinedError as exc:
        raise PromptError(
            f"the prompt refers to something the input does not have: {exc.message}",
            hint="add the field to the agent's input, or guard it with "
            "{% if input.NAME is defined %}",
        ) from exc
    except jinja2.TemplateError as exc:
        raise PromptError(f"the prompt failed to render: {exc}") from exc
    return rendered, message
