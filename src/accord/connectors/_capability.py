"""Capabilities: named operations with typed contracts, and the registry that holds them."""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from accord.errors import CapabilityNotFound, ConfigurationError

SideEffect = Literal["read", "write", "irreversible"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a capability knows about the call: who, for which run and block, and its key.

    ``idempotency_key`` is derived from (run, block, visit): a retried or replayed call carries
    the same key, so a system that honours it applies the effect exactly once.
    """

    tenant_id: str
    run_id: str
    block: str
    visit: int
    attempt: int
    idempotency_key: str
    subject_id: str | None = None
    purpose: str | None = None
    deadline: float | None = None


Handler = Callable[[Any, CallContext], Any]


@dataclass(frozen=True)
class Capability:
    """A named operation with input and output contracts and its governance attributes.

    ``reads`` are the personal-data categories (DPV ``pd:`` terms) the capability returns,
    ``writes`` those it sends to its system; ``fields`` names the category each top-level output
    field carries, which is how the gateway projects a result to what a purpose allows. ``region``
    is where the system runs; ``source`` says where the capability was declared.

    ``by_category`` marks a capability whose output's top-level keys are the data categories
    of what they hold (the context store's read): the gateway then always asks for a lawful
    basis and withholds every key the purpose does not allow.

    ``reconcile`` names, for a capability that is not idempotent, the read capability that tells
    whether a call took effect: it takes ``{"idempotency_key": ...}`` and answers with the
    effect's result, or fails with status 404 when there was none.
    """

    name: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    side_effect: SideEffect = "read"
    idempotent: bool = True
    compensation: str | None = None
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None
    description: str = ""
    source: str = "python"
    reconcile: str | None = None
    by_category: bool = False

    @property
    def data_categories(self) -> tuple[str, ...]:
        """Every category the capability touches: what it reads, writes and returns."""
        return tuple(sorted({*self.reads, *self.writes, *self.fields.values()}))

    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()


class Closeable(typing.Protocol):
    def close(self) -> None: ...


@dataclass
class CapabilityRegistry:
    """The capabilities a runtime may invoke, by name, and the connectors they hold open.

    A registry ``over`` another holds its own capabilities first and finds the rest in the
    other (which it also closes): Accord's built-in capabilities sit over the ones a
    deployment registers, without changing that registry.
    """

    _capabilities: dict[str, Capability] = field(default_factory=dict)
    _resources: list[Closeable] = field(default_factory=list)
    over: CapabilityRegistry | None = None

    def own(self, resource: Closeable) -> None:
        """Close ``resource`` (a connector's client) when the registry closes."""
        self._resources.append(resource)

    def close(self) -> None:
        while self._resources:
            self._resources.pop().close()
        if self.over is not None:
            self.over.close()

    def add(self, capability: Capability) -> Capability:
        if capability.name in self._capabilities or (
            self.over is not None and self.over.find(capability.name) is not None
        ):
            raise ConfigurationError(
                f"capability {capability.name!r} is registered twice",
                hint="give each capability a unique name",
            )
        self._capabilities[capability.name] = capability
        return capability

    def capability(
        self,
        name: str,
        *,
        side_effect: SideEffect = "read",
        idempotent: bool = True,
        compensation: str | None = None,
        reads: tuple[str, ...] = (),
        writes: tuple[str, ...] = (),
        fields: Mapping[str, str] | None = None,
        region: str | None = None,
        reconcile: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a function ``(request: In, ctx: CallContext) -> Out`` as a capability.

        The input and output contracts are the Pydantic models in its annotations. An output
        field declared with ``Field(json_schema_extra={"category": "pd:EmailAddress"})`` carries
        that category, as if it were named in ``fields``.
        """

        def register(func: Handler) -> Handler:
            hints = typing.get_type_hints(func)
            params = list(inspect.signature(func).parameters)
            input_model = hints.get(params[0]) if params else None
            output_model = hints.get("return")
            if not (_is_model(input_model) and _is_model(output_model)):
                raise ConfigurationError(
                    f"capability {name!r}: annotate the first parameter and the return value "
                    "with Pydantic models",
                    hint="def f(request: MyInput, ctx: CallContext) -> MyOutput: ...",
                )
            output = typing.cast(type[BaseModel], output_model)
            self.add(
                Capability(
                    name=name,
                    input_model=typing.cast(type[BaseModel], input_model),
                    output_model=output,
                    handler=func,
                    side_effect=side_effect,
                    idempotent=idempotent,
                    compensation=compensation,
                    reads=reads,
                    writes=writes,
                    fields={**field_categories(output), **(fields or {})},
                    region=region,
                    reconcile=reconcile,
                    description=inspect.getdoc(func) or "",
                    source=f"{func.__module__}:{func.__qualname__}",
                )
            )
            return func

        return register

    def get(self, name: str) -> Capability:
        found = self.find(name)
        if found is not None:
            return found
        close = difflib.get_close_matches(name, [c.name for c in self], n=3)
        hint = (
            f"did you mean {', '.join(repr(c) for c in close)}?"
            if close
            else "run 'accord capability list' to see what is registered"
        )
        raise CapabilityNotFound(f"no capability named {name!r}", hint=hint)

    def holds(self, name: str) -> bool:
        """Whether ``name`` is one of this registry's own (not found in the one it is over)."""
        return name in self._capabilities

    def find(self, name: str) -> Capability | None:
        found = self._capabilities.get(name)
        if found is None and self.over is not None:
            return self.over.find(name)
        return found

    def __iter__(self) -> Iterator[Capability]:
        every = {c.name: c for c in self.over} if self.over is not None else {}
        every.update(self._capabilities)
        return iter(sorted(every.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def field_categories(model: type[BaseModel]) -> dict[str, str]:
    """The ``category`` each field of ``model`` declares in its JSON-schema extras."""
    found: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("category"), str):
            found[info.alias or name] = str(extra["category"])
    return found


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
