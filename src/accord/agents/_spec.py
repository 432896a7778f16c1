"""The agent spec file format, as Pydantic models.

An agent spec (YAML) names the model route, the prompt (from a prompt catalogue, pinned by its
content hash), the output contract and the business rules it must pass, the tools it may ask
for, its confidence bands, its budget and its cache policy. A deployed version never changes:
:class:`AgentDefinition` is the spec together with the exact prompt text and trained model it
was deployed with, and its digest covers all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from accord.agents._provider import ProviderKind
from accord.core import digest, parse_duration
from accord.journeys import Bands

NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
FieldType = Literal["string", "integer", "number", "boolean", "object", "array"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _seconds(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return value


class Price(_Model):
    """What a model costs, per 1,000 tokens, in the currency budgets are written in."""

    input: float = Field(0.0, ge=0.0)
    output: float = Field(0.0, ge=0.0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1000.0


class ScriptedAnswer(_Model):
    """One answer of a scripted model: given when ``when`` (a regular expression) matches the
    message, or always when it is empty."""

    when: str = ""
    repair: bool | None = Field(
        None, description="True: only for repair retries; False: only for first attempts"
    )
    output: Any
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    tool_calls: tuple[ToolCallScript, ...] = ()
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)


class ToolCallScript(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ModelRoute(_Model):
    """One model an agent may ask.

    The spec's ``model`` is asked first; each entry of ``route`` is asked instead when its
    ``when`` (CEL over ``output``, ``confidence``, ``valid`` and ``input`` of the answer so far)
    holds: small and local first, a larger model when a declared rule says so.
    """

    provider: ProviderKind
    name: str = Field(min_length=1, max_length=200)
    when: str | None = None
    endpoint: str | None = Field(
        None, description="the endpoint's name in the llm_endpoints setting (openai, anthropic)"
    )
    path: str | None = Field(None, description="local: the trained model file")
    input: str = Field("text", description="local: the input field holding the text")
    script: tuple[ScriptedAnswer, ...] = ()
    price: Price = Price()
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> ModelRoute:
        if self.provider == "local" and not self.path:
            raise ValueError("a local model needs 'path', the trained model file")
        if self.provider == "scripted" and not self.script:
            raise ValueError("a scripted model needs 'script', its answers")
        return self


class Rule(_Model):
    """A business rule the output must pass (CEL over ``output`` and ``input``)."""

    name: str = Field(pattern=NAME, max_length=64)
    check: str
    message: str = ""


class InputField(_Model):
    """One input field: its type and the data category it holds (for redaction)."""

    type: FieldType = "string"
    required: bool = True
    category: str | None = None
    description: str = ""


class OutputContract(_Model):
    """The output's JSON Schema and the rules it must pass."""

    schema_: dict[str, Any] = Field(alias="schema")
    rules: tuple[Rule, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _object(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("the output schema must describe an object (type: object)")
        return value


class Budget(_Model):
    """Limits per agent block visit; reaching one ends the attempt with ``budget_exceeded``."""

    tokens: int | None = Field(None, ge=1)
    cost: float | None = Field(None, ge=0.0)
    wall_time: float | None = Field(None, gt=0.0)
    tool_calls: int | None = Field(None, ge=0)

    _parse = field_validator("wall_time", mode="before")(_seconds)


class CachePolicy(_Model):
    """Answers are cached by (agent version, redacted input); ``ttl`` seconds, 0 is off."""

    ttl: float = Field(0.0, ge=0.0)

    _parse = field_validator("ttl", mode="before")(_seconds)


class Training(_Model):
    """Where a local model's training data came from, recorded with the model."""

    data: str | None = None
    attribution: str = ""
    seed: int = 0


class AgentSpec(_Model):
    """A whole agent spec file."""

    agent: str = Field(pattern=NAME, max_length=128)
    version: int = Field(ge=1)
    description: str = ""
    purpose: str | None = None
    model: ModelRoute
    route: tuple[ModelRoute, ...] = ()
    prompt: str = Field(
        description="NAME or NAME@sha256:HEX in the prompt catalogue; the hash pins its text"
    )
    prompts: str = Field("prompts", description="the prompt catalogue, relative to the spec")
    input: dict[str, InputField] = Field(default_factory=dict)
    output: OutputContract
    tools: tuple[str, ...] = ()
    bands: Bands = Bands(auto=0.9, confirm=0.6)
    budget: Budget = Budget()
    cache: CachePolicy = CachePolicy()
    repair: int = Field(1, ge=0, le=5, description="repair retries for an invalid output")
    training: Training = Training()

    @field_validator("input", mode="before")
    @classmethod
    def _short_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_off(cls, value: Any) -> Any:
        if value is False:
            return {"ttl": 0}
        return value

    @model_validator(mode="after")
    def _routes(self) -> AgentSpec:
        if self.model.when is not None:
            raise ValueError("'model' is asked first; only 'route' entries take 'when'")
        for i, route in enumerate(self.route):
            if route.when is None:
                raise ValueError(f"route[{i}] needs 'when', the rule that sends work to it")
        if len(set(self.tools)) != len(self.tools):
            raise ValueError("tools are listed more than once")
        return self

    @property
    def routes(self) -> tuple[ModelRoute, ...]:
        return (self.model, *self.route)

    @property
    def prompt_name(self) -> str:
        return self.prompt.partition("@")[0]

    @property
    def prompt_pin(self) -> str | None:
        _, _, pin = self.prompt.partition("@")
        return pin.removeprefix("sha256:") or None

    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema of the input an agent block maps (what lint checks)."""
        properties = {
            name: {"type": f.type, **({"description": f.description} if f.description else {})}
            for name, f in self.input.items()
        }
        required = [name for name, f in self.input.items() if f.required]
        return {"type": "object", "properties": properties, "required": required}


ScriptedAnswer.model_rebuild()


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """A deployable agent version: the spec, its prompt's text and its trained models.

    ``models`` maps each local route's ``path`` to the digest of the model file it was
    deployed with; the files themselves are stored beside the definition.
    """

    spec: AgentSpec
    prompt_text: str
    prompt_digest: str
    models: dict[str, str]
    source_name: str = "<memory>"

    @property
    def name(self) -> str:
        return self.spec.agent

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def key(self) -> str:
        """``name@version``, how reviews and metrics name this agent version."""
        return f"{self.spec.agent}@{self.spec.version}"

    @property
    def digest(self) -> str:
        return digest(
            {
                "spec": self.spec.model_dump(mode="json", by_alias=True),
                "prompt": self.prompt_digest,
                "models": self.models,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "prompt_text": self.prompt_text,
            "prompt_digest": self.prompt_digest,
            "models": dict(self.models),
            "source_name": self.source_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentDefinition:
        return cls(
            spec=AgentSpec.model_validate(data["spec"]),
            prompt_text=data["prompt_text"],
            prompt_digest=data["prompt_digest"],
            models=dict(data["models"]),
            source_name=data.get("source_name", "<memory>"),
        )
