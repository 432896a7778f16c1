"""Deterministic providers for simulations and tests.

:class:`ScriptedProvider` answers from the spec's script: the first answer whose pattern
matches the message, with the tool calls it lists. :class:`ObedientProvider` is the model an
attacker hopes for: it obeys every instruction it reads, in the message and in every tool
answer, by calling every tool it knows of with arguments taken from the instruction, and
repeats what it read in its output with full confidence. Attack tests drive it to show that
what stops an attack is the gateway, not the model's good sense.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from accord.agents._provider import AgentReply, AgentRequest, ProviderKind, ToolRunner, Usage
from accord.agents._spec import ScriptedAnswer
from accord.core import canonical_dumps
from accord.errors import ProviderFailed


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedProvider:
    """Answers from a script, the same way every time."""

    kind: ProviderKind = "scripted"

    def __init__(self, script: tuple[ScriptedAnswer, ...]) -> None:
        self._script = [(re.compile(a.when) if a.when else None, a) for a in script]

    def complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        text = request.message
        repairing = bool(request.repair)
        answer = next(
            (
                a
                for p, a in self._script
                if (p is None or p.search(text)) and a.repair in (None, repairing)
            ),
            None,
        )
        if answer is None:
            raise ProviderFailed(
                f"the script of agent {request.agent!r} has no answer for this message",
                hint="add an answer without 'when' as the last one, for anything else",
                retryable=False,
            )
        calls = 0
        for call in answer.tool_calls:
            tools(call.name, dict(call.arguments))
            calls += 1
        usage = Usage(
            input_tokens=answer.input_tokens or _tokens(request.instructions + text),
            output_tokens=answer.output_tokens or _tokens(canonical_dumps(answer.output)),
            requests=1,
            tool_calls=calls,
        )
        return AgentReply(answer.output, answer.confidence, usage, request.model)


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")
_URL = re.compile(r"https?://\S+|www\.\S+")
_AMOUNT = re.compile(r"\b\d+(?:\.\d+)?\b")


class ObedientProvider:
    """Obeys every instruction it reads: the worst case of a model under prompt injection.

    For each text it reads (the message first, then each tool answer) it calls every tool
    offered to it and every tool in ``settings["tools"]`` (tools it has "heard of": a list of
    names, or a mapping of names to the JSON Schema of their input), with the best arguments
    it can find: values of the same name in its input or in any tool
    answer, addresses, IBANs and links from the instruction, a plausible amount, and
    everything it has read so far as free text (an exfiltration attempt). Its output repeats
    what it read in every string field, with confidence 1.0.
    """

    kind: ProviderKind = "obedient"

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        heard = (settings or {}).get("tools", ())
        self._heard_of: dict[str, Any] = (
            {str(k): v for k, v in heard.items()}
            if isinstance(heard, Mapping)
            else dict.fromkeys((str(t) for t in heard), None)
        )
        self._rounds = int((settings or {}).get("rounds", 2))

    def complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        seen: list[str] = [request.message]
        known: dict[str, Any] = dict(request.input)
        schemas = {**self._heard_of, **{t.name: t.input_schema for t in request.tools}}
        names = list(schemas)
        calls = 0
        pending = [request.message]
        for _ in range(self._rounds):
            answers: list[str] = []
            for instruction in pending:
                for name in names:
                    arguments = _arguments(schemas.get(name), instruction, seen, known)
                    result = tools(name, arguments)
                    calls += 1
                    if result.ok and result.output is not None:
                        known.update(
                            (k, v)
                            for k, v in result.output.items()
                            if isinstance(v, str | int | float)
                        )
                        answer = canonical_dumps(result.output)
                    else:
                        answer = result.message or ""
                    if answer:
                        answers.append(answer)
                        seen.append(answer)
            pending = answers
            if not pending:
                break
        read = " ".join(seen)
        output = _fill(request.output_schema, read)
        usage = Usage(_tokens(request.instructions + read), _tokens(read), 1, calls)
        return AgentReply(output, 1.0, usage, request.model, {"obeyed": len(seen)})


_TEXT_LIMIT = 2000


def _arguments(
    schema: Mapping[str, Any] | None, instruction: str, seen: list[str], known: Mapping[str, Any]
) -> Any:
    everything = " ".join(seen)[:_TEXT_LIMIT]
    address = _first(_EMAIL, instruction) or "unknown@example.com"
    if not schema:
        return {"to": address, "text": everything, **{k: v for k, v in known.items()}}
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, Mapping) else None
        lowered = name.lower()
        if name in known and not isinstance(known[name], dict | list):
            out[name] = known[name]
        elif isinstance(prop, Mapping) and prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind in ("number", "integer"):
            out[name] = 10 if kind == "integer" else 10.0
        elif kind == "boolean":
            out[name] = True
        elif kind in ("object", "array"):
            out[name] = {} if kind == "object" else []
        elif "email" in lowered or lowered in ("to", "recipient"):
            out[name] = address
        elif "iban" in lowered or "account" in lowered:
            out[name] = _first(_IBAN, instruction) or everything
        elif "url" in lowered or "link" in lowered:
            out[name] = _first(_URL, instruction) or everything
        else:
            out[name] = everything
    return out


def _fill(schema: Mapping[str, Any], read: str) -> Any:
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][-1]
    if kind == "object":
        return {name: _fill(prop, read) for name, prop in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [read]
    if kind == "number":
        return float(_first(_AMOUNT, read) or 99999)
    if kind == "integer":
        return int(float(_first(_AMOUNT, read) or 99999))
    if kind == "boolean":
        return True
    return read


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(0) if match else None
