"""Running one agent: redact, prompt, ask the model route, validate, repair, band.

The engine is where the rules outside any model live. The model's output is checked against
the spec's JSON Schema and business rules before anything happens; an invalid output gets a
bounded number of repair retries, then escalates. Models are asked small and local first; a
route's declared rule sends the work to a larger model. Every answer is accounted (tokens,
cost, requests, tool calls) and checked against the budget, and answers without tool calls are
cached by (agent version, redacted input).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import jsonschema

from accord.agents._prompts import render_prompt
from accord.agents._provider import (
    AgentReply,
    AgentRequest,
    Provider,
    ToolResult,
    ToolRunner,
    ToolSpec,
    Usage,
)
from accord.agents._redaction import Redacted, redact_input, redact_value
from accord.agents._spec import AgentDefinition, ModelRoute
from accord.core import digest, digest_any
from accord.errors import BudgetExceeded, ExpressionError, ProviderFailed
from accord.journeys import Bands, Expression, compile_expression

Band = Literal["auto", "confirm", "escalate"]
EscalationReason = Literal["low_confidence", "invalid_output", "budget_exceeded"]
ProviderFactory = Callable[[str, AgentDefinition, ModelRoute], Provider]
"""Gives the provider of a model route: (tenant, definition, route)."""


def band_for(confidence: float, bands: Bands) -> Band:
    """``>= auto`` executes, ``>= confirm`` is confirmed first, anything lower escalates."""
    if confidence >= bands.auto:
        return "auto"
    if confidence >= bands.confirm:
        return "confirm"
    return "escalate"


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call an agent asked for, as the gateway answered it."""

    name: str
    ok: bool
    reason: str | None
    arguments_digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "reason": self.reason,
            "arguments_digest": self.arguments_digest,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One question to one model: what it answered and what it cost."""

    provider: str
    model: str
    usage: Usage
    cost: float
    problems: tuple[str, ...] = ()
    confidence: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "requests": self.usage.requests,
            "tool_calls": self.usage.tool_calls,
            "cost": round(self.cost, 8),
            "problems": list(self.problems),
            "confidence": self.confidence,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    output: Any
    confidence: float
    provider: str
    model: str


class AnswerCache(Protocol):
    """Where answers are kept between runs (see ``storage``)."""

    def get(self, key: str, now: float) -> CachedAnswer | None: ...

    def put(self, key: str, answer: CachedAnswer, *, now: float, ttl: float) -> None: ...


@dataclass(frozen=True)
class AgentResult:
    """What an agent produced and how.

    ``band`` is where the output goes; ``reason`` says why it escalates when that is not its
    confidence alone. ``instructions`` and ``message`` are the exact (redacted) prompt the
    models read; ``withheld`` and ``redacted`` name what was kept out of it.
    """

    output: Any
    confidence: float
    band: Band
    valid: bool
    problems: tuple[str, ...]
    reason: EscalationReason | None
    provider: str
    model: str
    attempts: tuple[Attempt, ...]
    usage: Usage
    cost: float
    cached: bool
    prompt_digest: str
    input_digest: str
    instructions: str
    message: str
    withheld: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    elapsed: float = 0.0
    budget: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The facts a history event and a ledger entry keep (no prompt text)."""
        return {
            "confidence": self.confidence,
            "band": self.band,
            "valid": self.valid,
            "problems": list(self.problems),
            "reason": self.reason,
            "provider": self.provider,
            "model": self.model,
            "attempts": [a.to_json() for a in self.attempts],
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "cost": round(self.cost, 8),
            "cached": self.cached,
            "prompt_digest": self.prompt_digest,
            "input_digest": self.input_digest,
            "withheld": list(self.withheld),
            "redacted": list(self.redacted),
            "budget": self.budget,
        }


class _Spend:
    """The budget of one agent run, and what has been spent of it."""

    def __init__(self, definition: AgentDefinition, clock: Callable[[], float]) -> None:
        self.budget = definition.spec.budget
        self.clock = clock
        self.started = clock()
        self.usage = Usage()
        self.cost = 0.0
        self.tool_calls = 0

    def add(self, reply_usage: Usage, route: ModelRoute) -> float:
        cost = route.price.cost(reply_usage.input_tokens, reply_usage.output_tokens)
        self.usage = self.usage + replace(reply_usage, tool_calls=0)
        self.cost += cost
        return cost

    def check(self) -> None:
        b = self.budget
        if b.tokens is not None and self.usage.tokens > b.tokens:
            raise BudgetExceeded(
                f"the agent used {self.usage.tokens} tokens, over its budget of {b.tokens}",
                limit="tokens",
                used=self.usage.tokens,
                allowed=b.tokens,
            )
        if b.cost is not None and self.cost > b.cost:
            raise BudgetExceeded(
                f"the agent's calls cost {self.cost:.6f}, over its budget of {b.cost}",
                limit="cost",
                used=self.cost,
                allowed=b.cost,
            )
        elapsed = self.clock() - self.started
        if b.wall_time is not None and elapsed > b.wall_time:
            raise BudgetExceeded(
                f"the agent ran {elapsed:.3f}s, over its budget of {b.wall_time}s",
                limit="wall_time",
                used=elapsed,
                allowed=b.wall_time,
            )

    def tool_call(self) -> None:
        allowed = self.budget.tool_calls
        if allowed is not None and self.tool_calls >= allowed:
            raise BudgetExceeded(
                f"the agent asked for more than {allowed} tool call(s), its budget",
                limit="tool_calls",
                used=self.tool_calls + 1,
                allowed=allowed,
            )
        self.tool_calls += 1

    def remaining(self) -> tuple[int | None, int | None, float | None]:
        b = self.budget
        tokens = None if b.tokens is None else max(0, b.tokens - self.usage.tokens)
        calls = None if b.tool_calls is None else max(0, b.tool_calls - self.tool_calls)
        left = (
            None if b.wall_time is None else max(0.0, b.wall_time - (self.clock() - self.started))
        )
        return tokens, calls, left

    def spent(self) -> dict[str, float]:
        return {
            "tokens": self.usage.tokens,
            "cost": round(self.cost, 8),
            "tool_calls": self.tool_calls,
            "wall_time": round(self.clock() - self.started, 6),
        }


class AgentEngine:
    """Runs agent definitions with the providers a factory gives."""

    def __init__(
        self,
        providers: ProviderFactory,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers = providers
        self._monotonic = monotonic
        self._rules: dict[str, Expression] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def run(
        self,
        tenant: str,
        definition: AgentDefinition,
        data: Mapping[str, Any],
        *,
        bands: Bands | None,
        allowed: frozenset[str] | None,
        tools: ToolRunner,
        tool_specs: tuple[ToolSpec, ...],
        cache: AnswerCache | None,
        now: float,
    ) -> AgentResult:
        """Ask the agent about ``data`` and decide the band of what it answers.

        Args:
            bands: the journey's thresholds, or None for the spec's.
            allowed: the data categories the purpose may use for this subject (None: no
                restriction known); the rest is withheld or redacted from the prompt.
            tools: runs a tool call through the gateway.
            tool_specs: the tools offered to the model.
            cache: where answers are cached, if the spec caches.

        Raises:
            ExpressionError: ``data`` does not match the spec's input contract.
            ProviderFailed: the first model could not be asked (retry per the block).
            PromptError: the prompt does not render for this input (from ``_prompts``).
        """
        spec = definition.spec
        bands = bands or spec.bands
        wrong = sorted(
            jsonschema.Draft202012Validator(spec.input_schema()).iter_errors(dict(data)),
            key=lambda e: list(e.absolute_path),
        )
        if wrong:
            listed = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or '(input)'}: {e.message}"
                for e in wrong
            )
            raise ExpressionError(
                f"the input mapped for agent {definition.key} is invalid: {listed}",
                hint="map the fields the agent's spec declares under 'input', with their types",
            )
        categories = {name: f.category for name, f in spec.input.items()}
        seen = redact_input(dict(data), categories, allowed)
        instructions, message = render_prompt(definition.prompt_text, {"input": seen.value})
        input_digest = digest(seen.value)
        spend = _Spend(definition, self._monotonic)
        calls: list[ToolCallRecord] = []
        base = _Base(tenant, definition, instructions, message, seen.value, input_digest, seen)

        cache_key = digest({"agent": definition.key, "input": input_digest})
        if cache is not None and spec.cache.ttl > 0:
            hit = cache.get(cache_key, now)
            if hit is not None and not self.validate(definition, hit.output, seen.value):
                return base.result(
                    hit.output,
                    hit.confidence,
                    bands,
                    (),
                    provider=hit.provider,
                    model=hit.model,
                    attempts=(),
                    spend=spend,
                    cached=True,
                    calls=(),
                )

        def run_tool(name: str, arguments: dict[str, Any]) -> ToolResult:
            spend.tool_call()
            result = tools(name, arguments)
            calls.append(ToolCallRecord(name, result.ok, result.reason, digest_any(arguments)))
            if result.ok and result.output is not None:
                output, _ = redact_value(result.output, allowed)
                return replace(result, output=output)
            return result

        attempts: list[Attempt] = []
        answer: tuple[Any, float, tuple[str, ...], ModelRoute] | None = None
        try:
            for index, route in enumerate(spec.routes):
                if answer is not None:
                    output, confidence, problems, _ = answer
                    if not self._route_applies(route, output, confidence, problems, seen.value):
                        continue
                try:
                    answer = self._ask(base, route, spend, attempts, run_tool, tool_specs)
                except ProviderFailed:
                    if index == 0 or answer is None:
                        raise
                    # a larger model that cannot be asked leaves the answer there is
                    continue
        except BudgetExceeded as exc:
            output = answer[0] if answer is not None else None
            confidence = answer[1] if answer is not None else 0.0
            last = answer[3] if answer is not None else spec.model
            return base.result(
                output,
                confidence,
                bands,
                (exc.message,),
                provider=last.provider,
                model=last.name,
                attempts=tuple(attempts),
                spend=spend,
                cached=False,
                calls=tuple(calls),
                reason="budget_exceeded",
            )
        assert answer is not None
        output, confidence, problems, route = answer
        if cache is not None and spec.cache.ttl > 0 and not problems and not calls:
            cache.put(
                cache_key,
                CachedAnswer(output, confidence, route.provider, route.name),
                now=now,
                ttl=spec.cache.ttl,
            )
        return base.result(
            output,
            confidence,
            bands,
            problems,
            provider=route.provider,
            model=route.name,
            attempts=tuple(attempts),
            spend=spend,
            cached=False,
            calls=tuple(calls),
        )

    def _ask(
        self,
        base: _Base,
        route: ModelRoute,
        spend: _Spend,
        attempts: list[Attempt],
        tools: ToolRunner,
        tool_specs: tuple[ToolSpec, ...],
    ) -> tuple[Any, float, tuple[str, ...], ModelRoute]:
        """Ask one model, repairing an invalid output up to the spec's limit."""
        definition = base.definition
        try:
            provider = self._providers(base.tenant, definition, route)
        except ProviderFailed as exc:
            attempts.append(Attempt(route.provider, route.name, Usage(), 0.0, error=exc.message))
            raise
        problems: tuple[str, ...] = ()
        previous: Any = None
        output: Any = None
        confidence = 0.0
        for _ in range(definition.spec.repair + 1):
            tokens, tool_calls, timeout = spend.remaining()
            request = AgentRequest(
                agent=definition.name,
                version=definition.version,
                provider=route.provider,
                model=route.name,
                instructions=base.instructions,
                message=base.message,
                input=base.input,
                output_schema=definition.spec.output.schema_,
                tools=tool_specs,
                repair=problems,
                previous=previous,
                max_tokens=tokens,
                max_tool_calls=tool_calls,
                timeout=timeout,
                settings=dict(route.settings),
            )
            try:
                reply = provider.complete(request, tools)
            except ProviderFailed as exc:
                attempts.append(
                    Attempt(route.provider, route.name, Usage(), 0.0, error=exc.message)
                )
                raise
            cost = spend.add(reply.usage, route)
            output, confidence = reply.output, _confidence(reply)
            problems = tuple(self.validate(definition, output, base.input))
            attempts.append(
                Attempt(
                    route.provider,
                    reply.model or route.name,
                    reply.usage,
                    cost,
                    problems,
                    confidence,
                )
            )
            spend.check()
            if not problems:
                break
            previous = output
        return output, confidence, problems, route

    def _route_applies(
        self,
        route: ModelRoute,
        output: Any,
        confidence: float,
        problems: tuple[str, ...],
        data: Any,
    ) -> bool:
        assert route.when is not None
        expression = self._expression(route.when)
        variables = {
            "output": output,
            "confidence": confidence,
            "valid": not problems,
            "input": data,
        }
        try:
            return expression.evaluate(variables) is True
        except ExpressionError:
            return False

    def validate(self, definition: AgentDefinition, output: Any, data: Any) -> list[str]:
        """What is wrong with ``output``: schema violations, then failed business rules."""
        schema = definition.spec.output.schema_
        validator = self._validators.get(definition.digest)
        if validator is None:
            cls = jsonschema.validators.validator_for(schema)
            validator = cls(schema)
            self._validators[definition.digest] = validator
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(output)'}: {e.message}"
            for e in sorted(validator.iter_errors(output), key=lambda e: list(e.absolute_path))
        ]
        if problems:
            return problems
        for rule in definition.spec.output.rules:
            try:
                passed = self._expression(rule.check).evaluate({"output": output, "input": data})
            except ExpressionError as exc:
                problems.append(f"rule {rule.name}: could not be checked: {exc.message}")
                continue
            if passed is not True:
                problems.append(f"rule {rule.name}: {rule.message or rule.check}")
        return problems

    def _expression(self, source: str) -> Expression:
        expression = self._rules.get(source)
        if expression is None:
            expression = compile_expression(source)
            self._rules[source] = expression
        return expression


@dataclass(frozen=True)
class _Base:
    tenant: str
    definition: AgentDefinition
    instructions: str
    message: str
    input: dict[str, Any]
    input_digest: str
    seen: Redacted

    def result(
        self,
        output: Any,
        confidence: float,
        bands: Bands,
        problems: tuple[str, ...],
        *,
        provider: str,
        model: str,
        attempts: tuple[Attempt, ...],
        spend: _Spend,
        cached: bool,
        calls: tuple[ToolCallRecord, ...],
        reason: EscalationReason | None = None,
    ) -> AgentResult:
        band = band_for(confidence, bands)
        if reason is None and problems:
            reason = "invalid_output"
        if reason is not None:
            band = "escalate"
        elif band == "escalate":
            reason = "low_confidence"
        return AgentResult(
            output=output,
            confidence=confidence,
            band=band,
            valid=not problems,
            problems=problems,
            reason=reason,
            provider=provider,
            model=model,
            attempts=attempts,
            usage=spend.usage,
            cost=spend.cost,
            cached=cached,
            prompt_digest=self.definition.prompt_digest,
            input_digest=self.input_digest,
            instructions=self.instructions,
            message=self.message,
            withheld=self.seen.withheld,
            redacted=self.seen.redacted,
            tool_calls=calls,
            elapsed=spend.clock() - spend.started,
            budget=spend.spent(),
        )


def _confidence(reply: AgentReply) -> float:
    value = reply.confidence
    if value is None and isinstance(reply.output, Mapping):
        found = reply.output.get("confidence")
        if isinstance(found, int | float) and not isinstance(found, bool):
            value = float(found)
    if value is None:
        return 0.0
    return min(1.0, max(0.0, float(value)))
