"""Build journeys in Python. The result is the same :class:`JourneySpec` a YAML file gives."""

from __future__ import annotations

from typing import Any, Self

import yaml
from pydantic import ValidationError

from accord.errors import JourneyInvalid
from accord.journeys._loader import SourceMap, validation_diagnostics
from accord.journeys._spec import JourneySpec


class FlowBuilder:
    """A list of blocks; also the body of a parallel branch or a map.

    Every method appends one block and returns the builder. Options shared by all blocks
    (``next``, ``retry``, ``timeout``, ``on_error``, ``compensate``, ``purpose``, ``reads``,
    ``description``) are passed as keyword arguments, spelled as in YAML.
    """

    def __init__(self, *, name: str | None = None, start: str | None = None) -> None:
        self._blocks: list[dict[str, Any]] = []
        self._name = name
        self._start = start

    def _add(self, kind: str, block_id: str, fields: dict[str, Any]) -> Self:
        block = {"id": block_id, "kind": kind}
        # An explicit next=None ends the flow here, as 'next: null' does in YAML.
        block.update({k: v for k, v in fields.items() if v is not None or k == "next"})
        self._blocks.append(block)
        return self

    def task(self, block_id: str, capability: str, *, input: Any = None, **options: Any) -> Self:
        return self._add("task", block_id, {"capability": capability, "input": input, **options})

    def decide(
        self,
        block_id: str,
        *,
        inputs: dict[str, str],
        rules: list[dict[str, Any]],
        hit_policy: str = "unique",
        default: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        return self._add(
            "decide",
            block_id,
            {
                "inputs": inputs,
                "rules": rules,
                "hit_policy": hit_policy,
                "default": default,
                **options,
            },
        )

    def choice(
        self,
        block_id: str,
        *,
        choices: list[tuple[str, str]] | dict[str, str],
        default: str,
        **options: Any,
    ) -> Self:
        pairs = choices.items() if isinstance(choices, dict) else choices
        listed = [{"when": when, "next": target} for when, target in pairs]
        return self._add("choice", block_id, {"choices": listed, "default": default, **options})

    def wait(
        self,
        block_id: str,
        *,
        timer: str | float | None = None,
        until: str | None = None,
        event: str | None = None,
        correlation: str | None = None,
        **options: Any,
    ) -> Self:
        spec_event = None if event is None else {"name": event, "correlation": correlation}
        return self._add(
            "wait", block_id, {"timer": timer, "until": until, "event": spec_event, **options}
        )

    def approve(
        self,
        block_id: str,
        *,
        role: str = "reviewer",
        on: dict[str, str] | None = None,
        **options: Any,
    ) -> Self:
        return self._add("approve", block_id, {"role": role, "on": on, **options})

    def escalate(
        self,
        block_id: str,
        *,
        queue: str = "supervisors",
        reason: str | None = None,
        on: dict[str, str] | None = None,
        **options: Any,
    ) -> Self:
        return self._add(
            "escalate", block_id, {"queue": queue, "reason": reason, "on": on, **options}
        )

    def parallel(
        self, block_id: str, *branches: FlowBuilder, join: str = "all", **options: Any
    ) -> Self:
        return self._add(
            "parallel",
            block_id,
            {"branches": [b.to_dict() for b in branches], "join": join, **options},
        )

    def map(
        self,
        block_id: str,
        *,
        items: str,
        do: FlowBuilder,
        max_concurrency: int | None = None,
        result: str | None = None,
        **options: Any,
    ) -> Self:
        return self._add(
            "map",
            block_id,
            {
                "items": items,
                "do": do.to_dict(),
                "max_concurrency": max_concurrency,
                "result": result,
                **options,
            },
        )

    def call(
        self,
        block_id: str,
        journey: str,
        *,
        input: Any = None,
        version: int | None = None,
        **options: Any,
    ) -> Self:
        return self._add(
            "call", block_id, {"journey": journey, "input": input, "version": version, **options}
        )

    def offer(
        self,
        block_id: str,
        catalogue: str,
        *,
        input: Any = None,
        explore: bool = False,
        **options: Any,
    ) -> Self:
        """A next-best-action block choosing from ``catalogue``."""
        return self._add(
            "offer",
            block_id,
            {"catalogue": catalogue, "input": input, "explore": explore or None, **options},
        )

    def end(
        self, block_id: str, *, outcome: str = "completed", output: Any = None, **options: Any
    ) -> Self:
        return self._add("end", block_id, {"outcome": outcome, "output": output, **options})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"blocks": list(self._blocks)}
        if self._name is not None:
            data["name"] = self._name
        if self._start is not None:
            data["start"] = self._start
        return data


class JourneyBuilder(FlowBuilder):
    """Build a journey in code::

    spec = (
        JourneyBuilder("refund_request")
        .input(order_id="string", amount="number")
        .task("lookup", "orders.lookup", input={"order_id": "input.order_id"})
        .end("done", outcome="refunded")
        .build()
    )
    """

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        start: str | None = None,
        purpose: str | None = None,
    ) -> None:
        super().__init__(start=start)
        self._journey = name
        self._description = description
        self._purpose = purpose
        self._input: dict[str, Any] = {}

    def input(self, **fields: str | dict[str, Any]) -> Self:
        """Declare input fields: ``amount="number"`` or ``country={"type": "string", ...}``."""
        self._input.update(fields)
        return self

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"journey": self._journey, **super().to_dict()}
        if self._description:
            data["description"] = self._description
        if self._purpose:
            data["purpose"] = self._purpose
        if self._input:
            data["input"] = self._input
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def build(self) -> JourneySpec:
        """Validate and return the spec.

        Raises:
            JourneyInvalid: with the path of each problem (builders have no line numbers).
        """
        try:
            return JourneySpec.model_validate(self.to_dict())
        except ValidationError as exc:
            source = SourceMap(file=f"<builder {self._journey}>")
            raise JourneyInvalid(validation_diagnostics(exc, source)) from exc
