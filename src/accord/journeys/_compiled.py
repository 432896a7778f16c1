"""A deployed journey prepared for execution: blocks indexed, expressions compiled once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from accord.core import digest
from accord.errors import ContractViolation
from accord.journeys._expressions import (
    CompiledMapping,
    Expression,
    compile_expression,
    compile_mapping,
)
from accord.journeys._lint import iter_flows
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
    JourneySpec,
    MapBlock,
    OfferBlock,
    TaskBlock,
    WaitBlock,
)
from accord.journeys._tables import CompiledTable, compile_table

_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict[str, Any],
    "array": list[Any],
    "any": Any,
}


@dataclass(frozen=True)
class Node:
    """One block with its compiled expressions and the flow it belongs to."""

    block: AnyBlock
    flow: str
    mapping: CompiledMapping | None = None
    compensation: CompiledMapping | None = None
    context: CompiledMapping | None = None
    resource: CompiledMapping | None = None
    choices: tuple[tuple[Expression, str], ...] = ()
    table: CompiledTable | None = None
    expression: Expression | None = None
    recommend: CompiledMapping | None = None
    maker: Expression | None = None


@dataclass(frozen=True)
class FlowInfo:
    id: str
    start: str
    container: str | None


@dataclass(frozen=True)
class CompiledJourney:
    """What the runtime executes. Build it with :func:`compile_journey`."""

    spec: JourneySpec
    version: int
    digest: str
    nodes: dict[str, Node]
    flows: dict[str, FlowInfo]
    input_model: type[BaseModel] = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.journey

    def validate_input(self, data: Any) -> dict[str, Any]:
        """Check run input against the journey's input contract and fill defaults.

        Raises:
            ContractViolation: naming every bad field.
        """
        if not isinstance(data, dict):
            raise ContractViolation(
                f"input for journey {self.name!r} must be an object, got {type(data).__name__}"
            )
        try:
            model = self.input_model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            fields = ", ".join(f"{k} ({f.type})" for k, f in self.spec.input.items())
            raise ContractViolation(
                f"input for journey {self.name!r} is invalid: {problems}",
                hint=f"the journey takes: {fields or 'no fields'}",
            ) from exc
        return model.model_dump(mode="json")


def compile_journey(spec: JourneySpec, *, version: int = 0) -> CompiledJourney:
    """Index blocks and compile every expression. The spec must have passed lint."""
    nodes: dict[str, Node] = {}
    flows: dict[str, FlowInfo] = {}
    for flow in iter_flows(spec):
        flows[flow.id] = FlowInfo(flow.id, flow.start, flow.container)
        for block, _ in flow.blocks:
            nodes[block.id] = _compile_node(block, flow.id)
    fields: dict[str, Any] = {}
    for name, f in spec.input.items():
        annotation = _PY_TYPES[f.type]
        if f.required and f.default is None:
            fields[name] = (annotation, ...)
        else:
            fields[name] = (annotation | None, f.default)
    input_model = create_model(
        f"{spec.journey}_input", __config__={"extra": "forbid", "strict": False}, **fields
    )
    return CompiledJourney(
        spec=spec,
        version=version,
        digest=journey_digest(spec),
        nodes=nodes,
        flows=flows,
        input_model=input_model,
    )


def journey_digest(spec: JourneySpec) -> str:
    dumped = spec.model_dump(mode="json")
    # journeys written before triggers existed keep the digest they were deployed with
    if not dumped["triggers"]:
        del dumped["triggers"]
    return digest(dumped)


def _compile_node(block: AnyBlock, flow: str) -> Node:
    compensation = compile_mapping(block.compensate.input) if block.compensate else None
    if isinstance(block, TaskBlock):
        return Node(
            block,
            flow,
            mapping=compile_mapping(block.input),
            compensation=compensation,
            context=compile_mapping(block.context) if block.context else None,
            resource=compile_mapping(block.resource) if block.resource else None,
            maker=compile_expression(block.maker) if block.maker else None,
        )
    if isinstance(block, CallBlock | AgentBlock | OfferBlock):
        return Node(block, flow, mapping=compile_mapping(block.input), compensation=compensation)
    if isinstance(block, EndBlock):
        return Node(block, flow, mapping=compile_mapping(block.output))
    if isinstance(block, ChoiceBlock):
        choices = tuple((compile_expression(c.when), c.next) for c in block.choices)
        return Node(block, flow, choices=choices)
    if isinstance(block, DecideBlock):
        return Node(block, flow, table=compile_table(block))
    if isinstance(block, MapBlock):
        return Node(
            block,
            flow,
            expression=compile_expression(block.items),
            mapping=compile_mapping(block.result) if block.result else None,
        )
    if isinstance(block, WaitBlock):
        source = block.until or (block.event.correlation if block.event else None)
        return Node(block, flow, expression=compile_expression(source) if source else None)
    if isinstance(block, EscalateBlock):
        return Node(
            block,
            flow,
            expression=compile_expression(block.reason),
            recommend=compile_mapping(block.recommend) if block.recommend else None,
        )
    if isinstance(block, ConfirmBlock):
        return Node(
            block,
            flow,
            mapping=compile_mapping(block.proposal),
            expression=compile_expression(block.implicit) if block.implicit else None,
        )
    if isinstance(block, ApproveBlock):
        return Node(
            block,
            flow,
            compensation=compensation,
            recommend=compile_mapping(block.recommend) if block.recommend else None,
            maker=compile_expression(block.maker) if block.maker else None,
        )
    return Node(block, flow, compensation=compensation)


def edit_json_schema(block: ApproveBlock) -> dict[str, Any] | None:
    """The JSON Schema of an edited value for an approve block, or None if it takes no edits."""
    if not block.edit_schema:
        return None
    types = {
        "string": {"type": "string"},
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "object": {"type": "object"},
        "array": {"type": "array"},
        "any": {},
    }
    return {
        "type": "object",
        "properties": {
            name: {**types[f.type], **({"description": f.description} if f.description else {})}
            for name, f in block.edit_schema.items()
        },
        "required": sorted(
            name for name, f in block.edit_schema.items() if f.required and f.default is None
        ),
        "additionalProperties": False,
    }
