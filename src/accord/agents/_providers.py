"""Building the provider each model route names, once, from deployed models and settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from accord.agents._catalog import AgentCatalog
from accord.agents._local import IntentModel, LocalProvider
from accord.agents._provider import Provider
from accord.agents._scripted import ObedientProvider, ScriptedProvider
from accord.agents._spec import AgentDefinition, ModelRoute
from accord.errors import ConfigurationError, ProviderFailed

if TYPE_CHECKING:
    from accord.agents._llm import PydanticAIProvider

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class LlmEndpoint(BaseModel):
    """Where an LLM provider is reached (the ``llm_endpoints`` setting).

    ``base_url`` is any OpenAI-compatible endpoint (vLLM, Ollama, a gateway) or Anthropic's;
    the key is given directly or, better, named by ``api_key_env``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["openai", "anthropic"]
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(0, ge=0, le=10)

    def key(self) -> SecretStr | None:
        if self.api_key is not None:
            return self.api_key
        name = self.api_key_env or DEFAULT_KEY_ENV[self.kind]
        value = os.environ.get(name)
        return SecretStr(value) if value else None


class ProviderRegistry:
    """Gives the engine the provider for a route; instances are shared and closed together."""

    def __init__(self, catalog: AgentCatalog, endpoints: Mapping[str, LlmEndpoint]) -> None:
        self._catalog = catalog
        self._endpoints = dict(endpoints)
        self._built: dict[tuple[str, ...], Provider] = {}
        self._llms: list[PydanticAIProvider] = []
        self._lock = threading.Lock()

    def __call__(self, tenant: str, definition: AgentDefinition, route: ModelRoute) -> Provider:
        key = self._key(tenant, definition, route)
        with self._lock:
            found = self._built.get(key)
            if found is None:
                found = self._build(tenant, definition, route)
                self._built[key] = found
            return found

    def close(self) -> None:
        with self._lock:
            for llm in self._llms:
                llm.close()
            self._llms.clear()
            self._built.clear()

    def _key(self, tenant: str, definition: AgentDefinition, route: ModelRoute) -> tuple[str, ...]:
        if route.provider == "local":
            assert route.path is not None
            return ("local", tenant, definition.models[route.path], route.input)
        if route.provider in ("openai", "anthropic"):
            return (route.provider, route.endpoint or route.provider)
        index = str(definition.spec.routes.index(route))
        return (route.provider, tenant, definition.key, definition.digest, index)

    def _build(self, tenant: str, definition: AgentDefinition, route: ModelRoute) -> Provider:
        if route.provider == "local":
            assert route.path is not None
            data = self._catalog.model_bytes(tenant, definition.models[route.path])
            return LocalProvider(IntentModel.from_bytes(data), input_field=route.input)
        if route.provider == "scripted":
            return ScriptedProvider(route.script)
        if route.provider == "obedient":
            return ObedientProvider(route.settings)
        name = route.endpoint or route.provider
        endpoint = self._endpoints.get(name)
        if endpoint is None and route.endpoint is None:
            endpoint = LlmEndpoint(kind=route.provider)
        if endpoint is None or endpoint.kind != route.provider:
            known = ", ".join(sorted(self._endpoints)) or "none"
            raise ProviderFailed(
                f"agent {definition.key} asks for {route.provider} endpoint {name!r}, which is "
                "not configured",
                hint=f"set ACCORD_LLM_ENDPOINTS (configured: {known})",
                retryable=False,
            )
        # pydantic-ai and the model SDKs take seconds to import: only routes to a model need them
        from accord.agents._llm import PydanticAIProvider  # noqa: PLC0415

        try:
            llm = PydanticAIProvider(
                route.provider,
                base_url=endpoint.base_url,
                api_key=endpoint.key(),
                timeout=endpoint.timeout,
                max_retries=endpoint.max_retries,
            )
        except ConfigurationError as exc:
            raise ProviderFailed(exc.message, hint=exc.hint, retryable=False) from exc
        self._llms.append(llm)
        return llm
