"""Loading an agent spec file with its prompt and trained models, every problem located."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from accord.agents._local import IntentModel
from accord.agents._prompts import PromptCatalogue, PromptError, check_template
from accord.agents._spec import AgentDefinition, AgentSpec
from accord.errors import AgentInvalid, Diagnostic, JourneyInvalid
from accord.journeys import (
    ExpressionSyntaxError,
    SourceMap,
    compile_expression,
    parse_located_yaml,
    validation_diagnostics,
)


@dataclass(frozen=True)
class LoadedAgent:
    """A spec ready to deploy: its definition and the bytes of its trained models."""

    definition: AgentDefinition
    model_files: dict[str, bytes] = field(default_factory=dict)
    source_map: SourceMap | None = None


def load_agent_file(path: str | Path) -> LoadedAgent:
    """Load ``path``, its prompt (from the spec's catalogue) and its local models.

    Raises:
        AgentInvalid: with every problem, located in the file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentInvalid(
            [Diagnostic(f"cannot read the agent spec: {exc.strerror}", str(file))]
        ) from exc
    return load_agent_text(text, source_name=str(file), base=file.parent)


def load_agent_text(text: str, *, source_name: str = "<agent>", base: Path) -> LoadedAgent:
    """Like :func:`load_agent_file`, for text; prompts and models are found from ``base``."""
    try:
        data, source_map = parse_located_yaml(text, source_name)
    except JourneyInvalid as exc:
        raise AgentInvalid(exc.diagnostics) from exc
    if not isinstance(data, dict):
        raise AgentInvalid(
            [source_map.diagnostic((), "an agent spec is a mapping", hint="start with 'agent:'")]
        )
    try:
        spec = AgentSpec.model_validate(data)
    except ValidationError as exc:
        raise AgentInvalid(validation_diagnostics(exc, source_map)) from exc
    problems: list[Diagnostic] = []
    for i, route in enumerate(spec.route):
        assert route.when is not None
        try:
            compile_expression(route.when)
        except ExpressionSyntaxError as exc:
            problems.append(source_map.diagnostic(("route", i, "when"), exc.message))
    for i, rule in enumerate(spec.output.rules):
        try:
            compile_expression(rule.check)
        except ExpressionSyntaxError as exc:
            problems.append(source_map.diagnostic(("output", "rules", i, "check"), exc.message))
    catalogue = PromptCatalogue(base / spec.prompts)
    prompt_text, prompt_hash = "", ""
    try:
        prompt = catalogue.get(spec.prompt_name, pin=spec.prompt_pin)
        prompt_text, prompt_hash = prompt.text, prompt.digest
        syntax = check_template(prompt.text)
        if syntax is not None:
            problems.append(
                source_map.diagnostic(
                    ("prompt",), f"prompt {spec.prompt_name!r} has a template error: {syntax}"
                )
            )
    except PromptError as exc:
        problems.append(source_map.diagnostic(("prompt",), exc.message, hint=exc.hint))
    models: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for i, route in enumerate(spec.routes):
        if route.provider != "local" or route.path is None:
            continue
        where = ("model",) if i == 0 else ("route", i - 1)
        problem = _read_model(base / route.path, route.path, files, models)
        if problem is not None:
            problems.append(source_map.diagnostic((*where, "path"), problem[0], hint=problem[1]))
    if problems:
        raise AgentInvalid(problems)
    definition = AgentDefinition(spec, prompt_text, prompt_hash, models, source_name)
    return LoadedAgent(definition, files, source_map)


def _read_model(
    file: Path, name: str, files: dict[str, bytes], models: dict[str, str]
) -> tuple[str, str] | None:
    try:
        data = file.read_bytes()
    except OSError as exc:
        return (
            f"cannot read the trained model {name!r}: {exc.strerror}",
            f"train it with 'accord agent train SPEC --data FILE' (looked in {file})",
        )
    try:
        IntentModel.from_bytes(data)
    except AgentInvalid as exc:
        return (f"{name!r} is not a usable trained model: {exc.message}", exc.hint or "")
    except (ValueError, KeyError, OSError) as exc:
        return (
            f"{name!r} is not a trained Accord model: {exc}",
            "train it again with 'accord agent train SPEC --data FILE'",
        )
    files[name] = data
    models[name] = hashlib.sha256(data).hexdigest()
    return None
