"""Static checks on a journey: references, reachability, loops, expressions, types and contracts."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.connectors import CapabilityRegistry
from accord.consent import validate_categories, validate_purpose
from accord.errors import Diagnostic, InputError
from accord.gateway import REFUSAL_REASONS, required_categories
from accord.journeys._expressions import (
    DYN,
    ExpressionSyntaxError,
    accepts,
    check_expression,
    compile_expression,
    exemplar_from_schema,
    type_name,
)
from accord.journeys._loader import PathKey, SourceMap
from accord.journeys._spec import (
    AgentBlock,
    AnyBlock,
    ApproveBlock,
    CallBlock,
    ChoiceBlock,
    ConfirmBlock,
    DecideBlock,
    EndBlock,
    EscalateBlock,
    Flow,
    JourneySpec,
    MapBlock,
    OfferBlock,
    ParallelBlock,
    TaskBlock,
    WaitBlock,
)
from accord.journeys._tables import compile_cell

WAITING_KINDS = frozenset({"wait", "approve", "escalate", "confirm"})
HUMAN_DECISION = {
    "decision": "x",
    "by": "x",
    "reason": "x",
    "data": DYN,
    "value": DYN,
    "item": "x",
    "outcome": "x",
    "override_outcome": "x",
}


@dataclass
class FlowView:
    """One flow (top level, a parallel branch, or a map body) and where it sits in the file."""

    id: str
    start: str
    blocks: list[tuple[AnyBlock, PathKey]]
    path: PathKey
    container: str | None = None
    in_map: bool = False

    def edges(self, block: AnyBlock) -> list[tuple[str, str]]:
        """(field, target) pairs for every way control can leave ``block``."""
        out: list[tuple[str, str]] = []
        if block.next:
            out.append(("next", block.next))
        if block.on_error:
            out.append(("on_error", block.on_error))
        if isinstance(block, ChoiceBlock):
            out.extend((f"choices[{i}].next", c.next) for i, c in enumerate(block.choices))
            out.append(("default", block.default))
        if isinstance(block, WaitBlock | ApproveBlock | EscalateBlock) and block.on_timeout:
            out.append(("on_timeout", block.on_timeout))
        if isinstance(block, ApproveBlock | EscalateBlock | ConfirmBlock | AgentBlock | OfferBlock):
            out.extend((f"on.{k}", v) for k, v in block.on.items())
        if isinstance(block, TaskBlock):
            out.extend((f"on_refusal.{k}", v) for k, v in block.on_refusal.items())
        return out


def iter_flows(spec: JourneySpec) -> Iterator[FlowView]:
    """Every flow of the journey, outermost first."""

    def walk(
        flow_id: str,
        blocks: tuple[AnyBlock, ...],
        start: str | None,
        path: PathKey,
        container: str | None,
        in_map: bool,
    ) -> Iterator[FlowView]:
        listed = [(b, (*path, "blocks", i)) for i, b in enumerate(blocks)]
        yield FlowView(flow_id, start or blocks[0].id, listed, (*path, "blocks"), container, in_map)
        for block, block_path in listed:
            if isinstance(block, ParallelBlock):
                for j, branch in enumerate(block.branches):
                    yield from walk(
                        branch_flow_id(block.id, j),
                        branch.blocks,
                        branch.start,
                        (*block_path, "branches", j),
                        block.id,
                        in_map,
                    )
            elif isinstance(block, MapBlock):
                yield from walk(
                    map_flow_id(block.id),
                    block.do.blocks,
                    block.do.start,
                    (*block_path, "do"),
                    block.id,
                    True,
                )

    yield from walk("", spec.blocks, spec.start, (), None, False)


def branch_flow_id(block_id: str, index: int) -> str:
    return f"{block_id}#{index}"


def map_flow_id(block_id: str) -> str:
    return f"{block_id}#do"


def branch_name(flow: Flow, index: int) -> str:
    return flow.name or f"branch_{index}"


@dataclass(frozen=True, slots=True)
class AgentContract:
    """What lint checks an agent block against: the deployed spec's input and output."""

    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


AgentSchemas = Callable[[str, int | None], AgentContract | None]
"""Finds the contract of a deployed agent (name, version or None for the latest)."""


@dataclass
class _Context:
    spec: JourneySpec
    source: SourceMap
    capabilities: CapabilityRegistry | None
    journey_exists: Callable[[str], bool] | None
    journey_schema: Callable[[str], dict[str, Any] | None] | None = None
    agent_schemas: AgentSchemas | None = None
    found: list[Diagnostic] = field(default_factory=list)

    def error(self, path: PathKey, message: str, hint: str | None = None, offset: int = 0) -> None:
        self.found.append(self.source.diagnostic(path, message, hint=hint, offset=offset))

    def warning(self, path: PathKey, message: str, hint: str | None = None) -> None:
        d = self.source.diagnostic(path, message, hint=hint)
        self.found.append(
            Diagnostic(d.message, d.file, d.line, d.column, d.path, d.hint, severity="warning")
        )


def lint(
    spec: JourneySpec,
    source: SourceMap,
    *,
    capabilities: CapabilityRegistry | None = None,
    journey_exists: Callable[[str], bool] | None = None,
    journey_schema: Callable[[str], dict[str, Any] | None] | None = None,
    agent_schemas: AgentSchemas | None = None,
) -> list[Diagnostic]:
    """All problems in ``spec``; an empty list means it may be deployed.

    Args:
        capabilities: when given, task and compensation contracts are checked against it.
        journey_exists: when given, ``call`` targets are checked (missing ones are warnings).
        journey_schema: when given, the JSON Schema of a deployed journey's input (or None),
            against which ``call`` input mappings are checked.
        agent_schemas: when given, agent blocks must name a deployed agent, and their input
            mappings and later uses of their output are checked against its contract.
    """
    ctx = _Context(spec, source, capabilities, journey_exists, journey_schema, agent_schemas)
    flows = list(iter_flows(spec))
    _check_unique_ids(ctx, flows)
    if any(d.severity == "error" for d in ctx.found):
        return ctx.found
    by_id = {b.id: (b, p, f) for f in flows for b, p in f.blocks}
    for flow in flows:
        ids = {b.id for b, _ in flow.blocks}
        _check_references(ctx, flow, ids, by_id)
    if any(d.severity == "error" for d in ctx.found):
        return ctx.found
    for flow in flows:
        _check_reachability(ctx, flow)
        _check_loops(ctx, flow)
        for block, path in flow.blocks:
            _check_block_shape(ctx, block, path, flow)
    _check_expressions(ctx, flows, by_id)
    _check_triggers(ctx, flows)
    return ctx.found


def _check_unique_ids(ctx: _Context, flows: list[FlowView]) -> None:
    seen: dict[str, PathKey] = {}
    blocks = [entry for flow in flows for entry in flow.blocks]
    # in file order, so "first on line N" names the earlier line
    blocks.sort(key=lambda entry: ctx.source.locate(entry[1]) or (0, 0))
    for block, path in blocks:
        if block.id in seen:
            first = ctx.source.locate(seen[block.id])
            where = f" (first on line {first[0]})" if first else ""
            ctx.error(
                (*path, "id"),
                f"block id {block.id!r} is used twice{where}",
                hint="block ids must be unique across the whole journey",
            )
        else:
            seen[block.id] = path


def _check_references(
    ctx: _Context,
    flow: FlowView,
    ids: set[str],
    by_id: Mapping[str, tuple[AnyBlock, PathKey, FlowView]],
) -> None:
    if flow.start not in ids:
        ctx.error(
            (*flow.path[:-1], "start") if flow.path[:-1] else ("start",),
            f"start block {flow.start!r} does not exist in this flow",
            hint=_suggest(flow.start, ids),
        )
    for block, path in flow.blocks:
        for field_name, target in flow.edges(block):
            if target in ids:
                continue
            key: PathKey = (*path, *_field_path(field_name))
            if target in by_id:
                ctx.error(
                    key,
                    f"{field_name} of {block.id!r} points to {target!r}, "
                    "which belongs to another flow",
                    hint="blocks may only lead to blocks of their own flow (branch or map body)",
                )
            else:
                ctx.error(
                    key,
                    f"{field_name} of {block.id!r} points to {target!r}, which does not exist",
                    hint=_suggest(target, ids),
                )


def _field_path(field_name: str) -> PathKey:
    parts: list[str | int] = []
    for part in field_name.split("."):
        if "[" in part:
            name, index = part[:-1].split("[")
            parts.extend([name, int(index)])
        else:
            parts.append(part)
    return tuple(parts)


def _suggest(name: str, candidates: set[str], *, listing: str = "blocks here") -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=2)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"{listing}: " + ", ".join(sorted(candidates))


def _check_reachability(ctx: _Context, flow: FlowView) -> None:
    blocks = {b.id: b for b, _ in flow.blocks}
    seen = {flow.start}
    frontier = [flow.start]
    while frontier:
        current = blocks[frontier.pop()]
        for _, target in flow.edges(current):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    for block, path in flow.blocks:
        if block.id not in seen:
            ctx.error(
                (*path, "id"),
                f"block {block.id!r} can never be reached",
                hint=f"point a 'next' at it or remove it; this flow starts at {flow.start!r}",
            )


def _check_loops(ctx: _Context, flow: FlowView) -> None:
    blocks = {b.id: (b, p) for b, p in flow.blocks}
    graph = {b.id: [t for _, t in flow.edges(b)] for b, _ in flow.blocks}
    for component in _strongly_connected(graph):
        looping = len(component) > 1 or component[0] in graph[component[0]]
        if not looping:
            continue
        if any(blocks[b][0].kind in WAITING_KINDS for b in component):
            continue
        order = sorted(component, key=[x.id for x, _ in flow.blocks].index)
        ctx.error(
            (*blocks[order[0]][1], "id"),
            "loop without a wait: " + " → ".join([*order, order[0]]),
            hint="a loop must pass a wait, approve or escalate block, or it would spin forever; "
            "use retry: for repeated attempts",
        )


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(node, iter(graph[node]))]
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[current] = min(low[current], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[current])
            if low[current] == index[current]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == current:
                        break
                result.append(component)

    for node in graph:
        if node not in index:
            connect(node)
    return result


def _check_block_shape(ctx: _Context, block: AnyBlock, path: PathKey, flow: FlowView) -> None:
    if isinstance(block, EndBlock | ChoiceBlock) and block.next:
        ctx.error(
            (*path, "next"),
            f"a {block.kind} block cannot have 'next'",
            hint="an end block ends the run" if block.kind == "end" else "use choices/default",
        )
    if isinstance(block, WaitBlock):
        given = [n for n in ("timer", "until", "event") if getattr(block, n) is not None]
        if len(given) != 1:
            ctx.error(
                path,
                f"wait block {block.id!r} needs exactly one of timer, until or event "
                f"(has {', '.join(given) or 'none'})",
                hint="e.g. 'timer: 2h' or 'event: {name: payment_received, correlation: ...}'",
            )
        if block.on_timeout and block.event is None:
            ctx.error(
                (*path, "on_timeout"),
                "on_timeout applies to event waits only",
                hint="a timer wait simply continues with 'next'",
            )
    if (
        isinstance(block, WaitBlock | ApproveBlock | EscalateBlock)
        and block.on_timeout
        and block.timeout is None
    ):
        ctx.error(
            (*path, "on_timeout"),
            "on_timeout needs a timeout",
            hint="add e.g. 'timeout: 48h' to the block",
        )
    if block.retry is not None and block.kind != "task":
        ctx.warning(
            (*path, "retry"),
            f"retry has no effect on a {block.kind} block",
            hint="only task blocks are retried; a sub-journey's failure is final",
        )
    if block.timeout is not None and block.kind in (
        "decide",
        "choice",
        "parallel",
        "map",
        "call",
        "end",
    ):
        ctx.warning(
            (*path, "timeout"),
            f"timeout has no effect on a {block.kind} block",
            hint="put timeouts on the task or wait blocks inside it",
        )
    if (
        isinstance(block, TaskBlock)
        and ctx.capabilities is not None
        and ctx.capabilities.find(block.capability) is None
    ):
        names = {c.name for c in ctx.capabilities}
        ctx.error(
            (*path, "capability"),
            f"unknown capability {block.capability!r}",
            hint=(
                _suggest(block.capability, names, listing="capabilities")
                if names
                else "no capabilities registered"
            ),
        )
    if (
        block.compensate
        and ctx.capabilities is not None
        and ctx.capabilities.find(block.compensate.capability) is None
    ):
        ctx.error(
            (*path, "compensate", "capability"),
            f"unknown compensating capability {block.compensate.capability!r}",
            hint="register it, or remove the compensate entry",
        )
    if block.compensate and not isinstance(block, TaskBlock):
        ctx.warning(
            (*path, "compensate"),
            f"compensate has no effect on a {block.kind} block",
            hint="only a task's effect is compensated; put compensate on the task",
        )
    if block.compensate and isinstance(block, TaskBlock) and ctx.capabilities is not None:
        done = ctx.capabilities.find(block.capability)
        if done is not None and done.side_effect == "read":
            ctx.warning(
                (*path, "compensate"),
                f"{block.capability!r} is a read; it has no effect to compensate",
                hint="remove compensate: only write and irreversible calls leave an effect",
            )
    if isinstance(block, TaskBlock):
        _check_governance(ctx, block, path)
    if isinstance(block, CallBlock):
        if block.journey == ctx.spec.journey:
            ctx.error(
                (*path, "journey"),
                f"journey {block.journey!r} calls itself",
                hint="recursion through call is not allowed",
            )
        elif ctx.journey_exists is not None and not ctx.journey_exists(block.journey):
            ctx.warning(
                (*path, "journey"),
                f"journey {block.journey!r} is not deployed",
                hint="deploy it before runs reach this block",
            )
    if (
        isinstance(block, AgentBlock)
        and ctx.agent_schemas is not None
        and ctx.agent_schemas(block.agent_name, block.agent_version) is None
    ):
        ctx.error(
            (*path, "agent"),
            f"agent {block.agent!r} is not deployed",
            hint="deploy its spec first with 'accord agent deploy SPEC'",
        )
    if isinstance(block, EndBlock) and flow.in_map:
        ctx.error(
            path,
            "an end block inside a map body would end the whole run from one item",
            hint="let the map body finish by leaving 'next' out",
        )


def _check_governance(ctx: _Context, block: TaskBlock, path: PathKey) -> None:
    for reason in block.on_refusal:
        if reason != "*" and reason not in REFUSAL_REASONS:
            ctx.error(
                (*path, "on_refusal", reason),
                f"{reason!r} is not a refusal reason",
                hint=_suggest(reason, set(REFUSAL_REASONS), listing="reasons")
                + f" (reasons: {', '.join(REFUSAL_REASONS)}, or '*' for any)",
            )
    purpose = block.purpose or ctx.spec.purpose
    if purpose is not None:
        try:
            validate_purpose(purpose)
        except InputError as exc:
            ctx.error(
                (*path, "purpose") if block.purpose else ("purpose",), exc.message, hint=exc.hint
            )
    if block.reads:
        try:
            validate_categories(block.reads)
        except InputError as exc:
            ctx.error((*path, "reads"), exc.message, hint=exc.hint)
    capability = ctx.capabilities.find(block.capability) if ctx.capabilities else None
    if capability is None:
        return
    categories = required_categories(capability, block.reads)
    if categories and purpose is None:
        ctx.error(
            path,
            f"task {block.id!r} calls {capability.name!r}, which touches personal data "
            f"({', '.join(categories)}), but no purpose is declared",
            hint="add e.g. 'purpose: dpv:ServiceProvision' to the block or the journey",
        )
    returned = {*capability.reads, *capability.fields.values()}
    unknown = [c for c in block.reads if c not in returned]
    if unknown:
        ctx.warning(
            (*path, "reads"),
            f"{capability.name!r} returns no {', '.join(unknown)}",
            hint=f"it returns: {', '.join(sorted(returned)) or 'no personal data'}",
        )


def _check_expressions(
    ctx: _Context,
    flows: list[FlowView],
    by_id: Mapping[str, tuple[AnyBlock, PathKey, FlowView]],
) -> None:
    input_exemplar = {
        name: _field_exemplar(f.type, f.default) for name, f in ctx.spec.input.items()
    }
    outputs = {b.id: _output_exemplar(ctx, b, by_id) for b, _, _ in by_id.values()}
    ancestors = _ancestors(flows, by_id)
    item_exemplars: dict[str, Any] = {}
    base: dict[str, Any] = {
        "input": input_exemplar,
        "run": {"id": "x", "journey": "x", "version": 1, "subject": "x", "tenant": "x"},
        "now": 1.5,
        "errors": DYN,
    }
    for flow in flows:
        for block, path in flow.blocks:
            scope = dict(base)
            scope["steps"] = {a: outputs[a] for a in ancestors[block.id]}
            if flow.in_map:
                scope["item"] = DYN
                scope["index"] = 1
                container = flow.container
                while container is not None:
                    if isinstance(by_id[container][0], MapBlock):
                        scope["item"] = item_exemplars.get(container, DYN)
                        break
                    container = by_id[container][2].container
            values: dict[PathKey, Any] = {}
            for expr_path, source, expected in _expressions_of(block):
                where = scope
                if isinstance(block, TaskBlock) and expr_path[0] in ("context", "resource"):
                    # the call's input, as mapped (and as a reviewer may have edited it)
                    where = {**scope, "args": DYN}
                value = _check(ctx, source, (*path, *expr_path), where)
                values[expr_path] = value
                if value is DYN or expected is None or value is None:
                    continue
                if not accepts(expected, value) and not (
                    expected == "timestamp" and type_name(value) in ("number", "integer", "string")
                ):
                    ctx.error(
                        (*path, *expr_path),
                        f"`{source}` is {type_name(value)}, but {render(expr_path)} needs "
                        f"{expected}",
                        hint="convert it, e.g. int(...), double(...), string(...)",
                    )
            if isinstance(block, TaskBlock):
                _check_contract(
                    ctx,
                    repr(block.capability),
                    _capability_schema(ctx, block.capability),
                    block.input,
                    (*path, "input"),
                    scope,
                    "input",
                )
            if isinstance(block, AgentBlock):
                contract = _agent_contract(ctx, block)
                _check_contract(
                    ctx,
                    f"agent {block.agent!r}",
                    contract.input_schema if contract is not None else None,
                    block.input,
                    (*path, "input"),
                    scope,
                    "input",
                )
            if isinstance(block, CallBlock):
                _check_contract(
                    ctx,
                    f"journey {block.journey!r}",
                    ctx.journey_schema(block.journey) if ctx.journey_schema else None,
                    block.input,
                    (*path, "input"),
                    scope,
                    "input",
                )
            if block.compensate is not None:
                _check_contract(
                    ctx,
                    repr(block.compensate.capability),
                    _capability_schema(ctx, block.compensate.capability),
                    block.compensate.input,
                    (*path, "compensate", "input"),
                    {**scope, "steps": {**scope["steps"], block.id: outputs[block.id]}},
                    "input",
                )
            if isinstance(block, DecideBlock):
                columns = {name: values.get(("inputs", name), DYN) for name in block.inputs}
                _check_cells(ctx, block, path, columns)
            if isinstance(block, MapBlock):
                items = values.get(("items",), DYN)
                item_exemplars[block.id] = items[0] if isinstance(items, list) and items else DYN
                if block.result is not None:
                    body = {b: outputs[b] for b in _all_ids(block.do.blocks)}
                    result_scope = {
                        **scope,
                        "steps": {**scope["steps"], **body},
                        "item": item_exemplars[block.id],
                        "index": 1,
                    }
                    _check(ctx, block.result, (*path, "result"), result_scope)


TRIGGER_EVENT = {
    "id": "x",
    "source": "x",
    "type": "x",
    "subject": "x",
    "time": "x",
    "datacontenttype": "x",
    "extensions": DYN,
}
"""What a trigger's expressions see as ``event``: the CloudEvent's attributes."""


def _check_triggers(ctx: _Context, flows: list[FlowView]) -> None:
    waited = {
        b.event.name
        for flow in flows
        for b, _ in flow.blocks
        if isinstance(b, WaitBlock) and b.event is not None
    }
    scope = {"event": TRIGGER_EVENT, "data": DYN}
    for i, trigger in enumerate(ctx.spec.triggers):
        path: PathKey = ("triggers", i)
        actions = [n for n in ("start", "signal") if getattr(trigger, n) is not None]
        if len(actions) != 1:
            ctx.error(
                path,
                f"trigger for {trigger.event!r} needs exactly one of start or signal "
                f"(has {', '.join(actions) or 'none'})",
                hint="e.g. 'start: {input: {order_id: data.order_id}}' or "
                "'signal: {name: payment_received, correlation: data.order_id}'",
            )
        if trigger.when is not None:
            value = _check(ctx, trigger.when, (*path, "when"), scope)
            if value is not DYN and not isinstance(value, bool):
                ctx.error(
                    (*path, "when"),
                    f"`{trigger.when}` is {type_name(value)}, but when needs boolean",
                    hint="compare, e.g. data.amount > 100",
                )
        if trigger.start is not None:
            start = trigger.start
            for name in ("subject", "idempotency"):
                source = getattr(start, name)
                if source is not None:
                    _check(ctx, source, (*path, "start", name), scope)
            _check_contract(
                ctx,
                f"journey {ctx.spec.journey!r}",
                _own_input_schema(ctx.spec),
                start.input,
                (*path, "start", "input"),
                scope,
                "input",
            )
        if trigger.signal is not None:
            signal = trigger.signal
            _check(ctx, signal.correlation, (*path, "signal", "correlation"), scope)
            if signal.name not in waited:
                ctx.error(
                    (*path, "signal", "name"),
                    f"trigger signals {signal.name!r}, but no wait block of this journey "
                    "waits for that event",
                    hint=_suggest(signal.name, waited, listing="events waited for")
                    if waited
                    else "add a wait block with 'event: {name: ..., correlation: ...}'",
                )


def _own_input_schema(spec: JourneySpec) -> dict[str, Any]:
    """The journey's input contract as the JSON Schema a trigger's input mapping must fill."""
    properties = {
        name: {} if f.type == "any" else {"type": f.type} for name, f in spec.input.items()
    }
    required = [n for n, f in spec.input.items() if f.required and f.default is None]
    return {"type": "object", "properties": properties, "required": required}


def render(path: PathKey) -> str:
    return ".".join(str(p) for p in path)


def _check(ctx: _Context, source: str, path: PathKey, scope: Mapping[str, Any]) -> Any:
    if not isinstance(source, str):
        return source
    try:
        expression = compile_expression(source)
    except ExpressionSyntaxError as exc:
        ctx.error(
            path,
            exc.message,
            hint="CEL syntax: https://github.com/google/cel-spec; strings need quotes",
            offset=exc.offset,
        )
        return DYN
    checked = check_expression(expression, scope)
    if checked.problem:
        ctx.error(path, checked.problem, hint=checked.hint)
        return DYN
    return checked.value


def _expressions_of(block: AnyBlock) -> Iterator[tuple[PathKey, str, str | None]]:
    """(path within the block, CEL source, expected JSON type or None) for plain expressions."""
    if isinstance(block, ChoiceBlock):
        for i, choice in enumerate(block.choices):
            yield ("choices", i, "when"), choice.when, "boolean"
    elif isinstance(block, DecideBlock):
        for name, source in block.inputs.items():
            yield ("inputs", name), source, None
    elif isinstance(block, WaitBlock):
        if block.until is not None:
            yield ("until",), block.until, "timestamp"
        if block.event is not None and block.event.correlation is not None:
            yield ("event", "correlation"), block.event.correlation, None
    elif isinstance(block, MapBlock):
        yield ("items",), block.items, "array"
    elif isinstance(block, EscalateBlock):
        yield ("reason",), block.reason, "string"
        for leaf_path, source in _leaves(block.recommend, ("recommend",)):
            yield leaf_path, source, None
    elif isinstance(block, ConfirmBlock):
        for leaf_path, source in _leaves(block.proposal, ("proposal",)):
            yield leaf_path, source, None
        if block.implicit is not None:
            yield ("implicit",), block.implicit, "boolean"
    elif isinstance(block, ApproveBlock):
        for leaf_path, source in _leaves(block.recommend, ("recommend",)):
            yield leaf_path, source, None
        if block.maker is not None:
            yield ("maker",), block.maker, "string"
    elif isinstance(block, EndBlock):
        for leaf_path, source in _leaves(block.output, ("output",)):
            yield leaf_path, source, None
    elif isinstance(block, OfferBlock):
        for leaf_path, source in _leaves(block.input, ("input",)):
            yield leaf_path, source, None
    elif isinstance(block, TaskBlock):
        for leaf_path, source in _leaves(block.context, ("context",)):
            yield leaf_path, source, None
        for leaf_path, source in _leaves(block.resource, ("resource",)):
            yield leaf_path, source, None
        if block.maker is not None:
            yield ("maker",), block.maker, "string"


def _leaves(value: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


def _capability_schema(ctx: _Context, name: str) -> dict[str, Any] | None:
    capability = ctx.capabilities.find(name) if ctx.capabilities else None
    return None if capability is None else capability.input_schema()


def _check_contract(
    ctx: _Context,
    target: str,
    schema: Mapping[str, Any] | None,
    mapping: Mapping[str, Any],
    path: PathKey,
    scope: Mapping[str, Any],
    label: str,
) -> None:
    """Check an input mapping against the JSON Schema of what receives it (if known)."""
    if schema is None:
        for leaf_path, source in _leaves(dict(mapping), path):
            _check(ctx, source, leaf_path, scope)
        return
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    for name, value in mapping.items():
        if name not in properties:
            ctx.error(
                (*path, name),
                f"{target} has no {label} field {name!r}",
                hint=(
                    _suggest(name, set(properties), listing="its fields")
                    if properties
                    else "it takes no input"
                ),
            )
            continue
        if isinstance(value, str):
            result = _check(ctx, value, (*path, name), scope)
        else:
            for leaf_path, source in _leaves(value, (*path, name)):
                _check(ctx, source, leaf_path, scope)
            result = value
        expected = _json_type(properties[name], schema)
        if expected and result is not DYN and not accepts(expected, result):
            ctx.error(
                (*path, name),
                f"{label} field {name!r} of {target} needs {expected}, but "
                f"{_describe(value)} is {type_name(result)}",
                hint="convert it, e.g. int(...), double(...), string(...)",
            )
    missing = sorted(required - set(mapping))
    if missing:
        ctx.error(
            path,
            f"{target} needs {label} field{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(m) for m in missing),
            hint="map each required field to an expression, e.g. order_id: input.order_id",
        )


def _describe(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) else repr(value)


def _json_type(prop: Mapping[str, Any], root: Mapping[str, Any]) -> str | None:
    exemplar = exemplar_from_schema(prop, root)
    return None if exemplar is DYN else type_name(exemplar)


def _check_cells(
    ctx: _Context, block: DecideBlock, path: PathKey, columns: Mapping[str, Any]
) -> None:
    for i, rule in enumerate(block.rules):
        for column, cell in rule.when.items():
            cell_path: PathKey = (*path, "rules", i, "when", column)
            if column not in block.inputs:
                ctx.error(
                    cell_path,
                    f"rule tests {column!r}, which is not an input column",
                    hint="columns: " + ", ".join(block.inputs),
                )
                continue
            try:
                test = compile_cell(column, cell)
            except ExpressionSyntaxError as exc:
                ctx.error(
                    cell_path,
                    f"cell {cell!r} is not a valid test: {exc.message}",
                    hint="write e.g. '> 100', '[1..10]', 'in [\"DE\", \"FR\"]', '\"gold\"' or '-'",
                )
                continue
            checked = check_expression(test, columns) if test is not None else None
            if checked is not None and checked.problem:
                ctx.error(
                    cell_path,
                    f"cell {cell!r}: {checked.problem}",
                    hint="a cell sees only the table's input columns; quote text, e.g. '\"gold\"'",
                )
    outputs = {tuple(sorted(r.then)) for r in block.rules}
    if len(outputs) > 1:
        ctx.error(
            (*path, "rules"),
            "rules set different output columns: "
            + " / ".join(", ".join(o) for o in sorted(outputs)),
            hint="every rule's 'then' must give the same outputs",
        )


def _field_exemplar(kind: str, default: Any) -> Any:
    return {
        "string": "x",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": DYN,
        "object": DYN,
        "any": DYN,
    }[kind]


def _output_exemplar(
    ctx: _Context, block: AnyBlock, by_id: Mapping[str, tuple[AnyBlock, PathKey, FlowView]]
) -> Any:
    if isinstance(block, TaskBlock):
        capability = ctx.capabilities.find(block.capability) if ctx.capabilities else None
        if capability is None:
            return DYN
        schema = capability.output_schema()
        return exemplar_from_schema(schema)
    if isinstance(block, DecideBlock):
        row = dict(block.rules[0].then)
        if block.hit_policy in ("collect", "rule_order"):
            return [row]
        return row
    if isinstance(block, WaitBlock):
        return DYN if block.event is not None else {"fired_at": 1.5}
    if isinstance(block, ApproveBlock | EscalateBlock):
        return dict(HUMAN_DECISION)
    if isinstance(block, ConfirmBlock):
        return {"answer": "x", "implicit": True, "channel": "x", "proposal": DYN, "at": 1.5}
    if isinstance(block, CallBlock):
        return {"outcome": "x", "output": DYN, "run_id": "x"}
    if isinstance(block, OfferBlock):
        return {
            "offer": "x",
            "title": "x",
            "action": "x",
            "channel": "x",
            "reason": "x",
            "send_at": 1.5,
            "context": DYN,
            "explored": True,
            "method": "x",
            "score": 0.5,
            "choice": "x",
            "explanation": DYN,
        }
    if isinstance(block, AgentBlock):
        contract = _agent_contract(ctx, block)
        output = exemplar_from_schema(contract.output_schema) if contract is not None else DYN
        return {
            "output": output,
            "confidence": 0.5,
            "band": "x",
            "reason": "x",
            "agent": "x",
            "version": 1,
            "model": "x",
            "reviewed": DYN,
            "outcome_id": "x",
        }
    return DYN


def _agent_contract(ctx: _Context, block: AgentBlock) -> AgentContract | None:
    if ctx.agent_schemas is None:
        return None
    return ctx.agent_schemas(block.agent_name, block.agent_version)


def _ancestors(
    flows: list[FlowView], by_id: Mapping[str, tuple[AnyBlock, PathKey, FlowView]]
) -> dict[str, set[str]]:
    """For every block, the blocks whose outputs may exist when it runs."""
    result: dict[str, set[str]] = {}
    for flow in flows:
        reverse: dict[str, set[str]] = {b.id: set() for b, _ in flow.blocks}
        for block, _ in flow.blocks:
            for _, target in flow.edges(block):
                reverse[target].add(block.id)
        for block, _ in flow.blocks:
            seen: set[str] = set()
            frontier = list(reverse[block.id])
            while frontier:
                current = frontier.pop()
                if current not in seen:
                    seen.add(current)
                    frontier.extend(reverse[current])
            result[block.id] = seen
    for flow in flows:
        if flow.container is None:
            continue
        outer = _outer_ancestors(flow.container, result, by_id)
        for block, _ in flow.blocks:
            result[block.id] |= outer
    for flow in flows:
        for block, _ in flow.blocks:
            extra: set[str] = set()
            for ancestor in list(result[block.id]):
                parent = by_id[ancestor][0]
                if isinstance(parent, ParallelBlock):
                    for branch in parent.branches:
                        extra |= _all_ids(branch.blocks)
            result[block.id] |= extra
    return result


def _outer_ancestors(
    container: str,
    result: Mapping[str, set[str]],
    by_id: Mapping[str, tuple[AnyBlock, PathKey, FlowView]],
) -> set[str]:
    found = set(result[container])
    parent_flow = by_id[container][2]
    if parent_flow.container is not None:
        found |= _outer_ancestors(parent_flow.container, result, by_id)
    return found


def _all_ids(blocks: tuple[AnyBlock, ...]) -> set[str]:
    ids: set[str] = set()
    for block in blocks:
        ids.add(block.id)
        if isinstance(block, ParallelBlock):
            for branch in block.branches:
                ids |= _all_ids(branch.blocks)
    return ids
