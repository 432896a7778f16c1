"""Load journey YAML into a :class:`JourneySpec`, keeping the line and column of every value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from accord.errors import Diagnostic, JourneyInvalid
from accord.journeys._spec import BLOCK_KINDS, JourneySpec

Location = tuple[int, int]


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. (YAML 1.1 reads ``on:``, ``no`` and ``yes`` as
    booleans, which would break ``on:`` routing and country codes such as ``NO``.)"""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a journey file sits: path → (line, column), both 1-based."""

    file: str
    locations: Mapping[PathKey, Location] = field(default_factory=dict)
    text: str = ""

    def locate(self, path: PathKey) -> Location | None:
        """The location of the deepest known prefix of ``path``."""
        best: Location | None = self.locations.get(())
        current: PathKey = ()
        for element in path:
            candidate = (*current, element)
            if candidate in self.locations:
                current = candidate
                best = self.locations[candidate]
        return best

    def diagnostic(
        self, path: PathKey, message: str, *, hint: str | None = None, offset: int = 0
    ) -> Diagnostic:
        """A diagnostic located at ``path`` (``offset`` characters into a scalar value)."""
        location = self.locate(path)
        line, column = (location[0], location[1] + offset) if location else (None, None)
        return Diagnostic(
            message=message,
            file=self.file,
            line=line,
            column=column,
            path=render_path(path),
            hint=hint,
        )


def render_path(path: PathKey) -> str:
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else element)
    return text


@dataclass(frozen=True)
class LoadedJourney:
    """A validated journey specification with its source text and source map."""

    spec: JourneySpec
    source: str
    source_map: SourceMap


def load_journey_file(path: str | Path) -> LoadedJourney:
    """Read and validate a journey YAML file.

    Raises:
        JourneyInvalid: listing every problem with file, line, column and a hint.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise JourneyInvalid(
            [Diagnostic(f"cannot read the file: {exc.strerror}", str(file), hint="check the path")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise JourneyInvalid(
            [Diagnostic("the file is not UTF-8 text", str(file), hint="save it as UTF-8")]
        ) from exc
    return load_journey_text(text, source_name=str(file))


def load_journey_text(text: str, *, source_name: str = "<journey>") -> LoadedJourney:
    """Parse and validate journey YAML given as text.

    Raises:
        JourneyInvalid: listing every problem with file, line, column and a hint.
    """
    data, source_map = parse_located_yaml(text, source_name)
    if not isinstance(data, dict):
        raise JourneyInvalid(
            [
                source_map.diagnostic(
                    (),
                    "a journey file must be a mapping at the top level",
                    hint="start with 'journey: <name>' and a 'blocks:' list",
                )
            ]
        )
    diagnostics = _kind_diagnostics(data, source_map)
    if diagnostics:
        raise JourneyInvalid(diagnostics)
    try:
        spec = JourneySpec.model_validate(data)
    except ValidationError as exc:
        raise JourneyInvalid(validation_diagnostics(exc, source_map)) from exc
    return LoadedJourney(spec=spec, source=text, source_map=source_map)


def parse_located_yaml(text: str, source_name: str) -> tuple[Any, SourceMap]:
    """Parse YAML 1.2, keeping where each value sits.

    Raises:
        JourneyInvalid: invalid YAML, an empty file or a duplicate key, located.
    """
    try:
        # the reader checks every character as the loader is made, before any parsing
        loader = _Yaml12Loader(text)
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise JourneyInvalid(
            [
                Diagnostic(
                    f"invalid YAML: character U+{code:04X} is not allowed in YAML text",
                    source_name,
                    line=line,
                    column=column,
                    hint="remove the control character, or write it as an escape in a "
                    'double-quoted string ("\\x90")',
                )
            ]
        ) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            raise JourneyInvalid(
                [
                    Diagnostic(
                        "the file is empty",
                        source_name,
                        line=1,
                        column=1,
                        hint="a journey needs 'journey: <name>' and 'blocks:'",
                    )
                ]
            )
        locations: dict[PathKey, Location] = {}
        duplicates: list[Diagnostic] = []
        _index(node, (), locations, duplicates, source_name)
        if duplicates:
            raise JourneyInvalid(duplicates)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise JourneyInvalid(
            [
                Diagnostic(
                    f"invalid YAML: {exc.problem or exc.context}",
                    source_name,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    hint="check indentation, colons and quotes around this point",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        raise JourneyInvalid([Diagnostic(f"invalid YAML: {exc}", source_name)]) from exc
    finally:
        loader.dispose()
    return data, SourceMap(file=source_name, locations=locations, text=text)


def _index(
    node: yaml.Node,
    path: PathKey,
    locations: dict[PathKey, Location],
    duplicates: list[Diagnostic],
    source_name: str,
    *,
    enclosing: frozenset[int] = frozenset(),
) -> None:
    if id(node) in enclosing:
        line, column = locations.get(path[:-1], (None, None))
        raise JourneyInvalid(
            [
                Diagnostic(
                    "an alias refers to a value that contains it",
                    source_name,
                    line=line,
                    column=column,
                    path=render_path(path),
                    hint="an alias may repeat a value elsewhere, not inside itself",
                )
            ]
        )
    enclosing = enclosing | {id(node)}
    start = node.start_mark
    column = start.column + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        column += 1
    locations[path] = (start.line + 1, column)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(
                    Diagnostic(
                        f"duplicate key {key!r}",
                        source_name,
                        line=key_node.start_mark.line + 1,
                        column=key_node.start_mark.column + 1,
                        path=render_path(path),
                        hint=f"the first {key!r} is on line {seen[key]}; keep one of them",
                    )
                )
            seen[key] = key_node.start_mark.line + 1
            _index(
                value_node, (*path, key), locations, duplicates, source_name, enclosing=enclosing
            )
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), locations, duplicates, source_name, enclosing=enclosing)


def _kind_diagnostics(data: Mapping[str, Any], source_map: SourceMap) -> list[Diagnostic]:
    """Unknown or missing block kinds, found before Pydantic's less specific union errors."""
    found: list[Diagnostic] = []

    def visit(blocks: Any, path: PathKey) -> None:
        if not isinstance(blocks, list):
            return
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            here = (*path, i)
            kind = block.get("kind")
            if kind is None:
                found.append(
                    source_map.diagnostic(
                        here,
                        f"block {block.get('id', '#' + str(i))!r} has no 'kind'",
                        hint="kinds: " + ", ".join(BLOCK_KINDS),
                    )
                )
            elif kind not in BLOCK_KINDS:
                close = difflib.get_close_matches(str(kind), BLOCK_KINDS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                found.append(
                    source_map.diagnostic(
                        (*here, "kind"),
                        f"unknown block kind {kind!r}",
                        hint=hint + "kinds: " + ", ".join(BLOCK_KINDS),
                    )
                )
            for j, branch in enumerate(block.get("branches") or []):
                if isinstance(branch, dict):
                    visit(branch.get("blocks"), (*here, "branches", j, "blocks"))
            do = block.get("do")
            if isinstance(do, dict):
                visit(do.get("blocks"), (*here, "do", "blocks"))

    visit(data.get("blocks"), ("blocks",))
    return found


def validation_diagnostics(exc: ValidationError, source_map: SourceMap) -> list[Diagnostic]:
    """Turn Pydantic's errors into located diagnostics with hints."""
    errors = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    found: list[Diagnostic] = []
    for error, loc in zip(errors, locs, strict=True):
        if error["type"] == "too_short" and any(
            other != loc and other[: len(loc)] == loc for other in locs
        ):
            continue
        path = tuple(p for p in loc if not (isinstance(p, str) and p in BLOCK_KINDS))
        message, hint = _explain(error, path)
        found.append(source_map.diagnostic(path, message, hint=hint))
    return found


def _explain(error: Mapping[str, Any], path: PathKey) -> tuple[str, str | None]:
    kind = error["type"]
    field_name = path[-1] if path else "journey"
    if kind == "extra_forbidden":
        return (
            f"unknown field {field_name!r}",
            "remove it or check its spelling in docs/language.md",
        )
    if kind == "missing":
        return f"missing required field {field_name!r}", "add it; see docs/language.md"
    if kind == "string_pattern_mismatch":
        return (
            f"{field_name!r} has an invalid value {error.get('input')!r}",
            "use letters, digits and underscores, starting with a letter",
        )
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, "), None
    return f"{field_name!r}: {error['msg']}", None
