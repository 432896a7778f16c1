"""Agents under governance: specs, the prompt catalogue, providers, the engine, rollouts.

An agent proposes; the engine validates what it proposes against its contract and business
rules and bands it by confidence; the runtime routes it (execute, confirm, escalate); every
tool call it asks for passes the gateway with the agent as principal.
"""

from accord.agents._catalog import AgentCatalog, AgentDeployment, DatabaseAnswerCache
from accord.agents._engine import (
    AgentEngine,
    AgentResult,
    AnswerCache,
    Attempt,
    Band,
    CachedAnswer,
    ProviderFactory,
    ToolCallRecord,
    band_for,
)
from accord.agents._loader import LoadedAgent, load_agent_file, load_agent_text
from accord.agents._prompts import Prompt, PromptCatalogue, PromptError, render_prompt
from accord.agents._provider import (
    AgentReply,
    AgentRequest,
    Provider,
    ProviderKind,
    ToolResult,
    ToolRunner,
    ToolSpec,
    Usage,
)
from accord.agents._providers import LlmEndpoint, ProviderRegistry
from accord.agents._redaction import Redacted, redact_input, redact_text
from accord.agents._rollouts import STAGES, bucket_of, in_candidate, next_stage, rollback_reason
from accord.agents._scripted import ObedientProvider, ScriptedProvider
from accord.agents._spec import AgentDefinition, AgentSpec, ModelRoute

__all__ = [
    "STAGES",
    "AgentCatalog",
    "AgentDefinition",
    "AgentDeployment",
    "AgentEngine",
    "AgentReply",
    "AgentRequest",
    "AgentResult",
    "AgentSpec",
    "AnswerCache",
    "Attempt",
    "Band",
    "CachedAnswer",
    "DatabaseAnswerCache",
    "LlmEndpoint",
    "LoadedAgent",
    "ModelRoute",
    "ObedientProvider",
    "Prompt",
    "PromptCatalogue",
    "PromptError",
    "Provider",
    "ProviderFactory",
    "ProviderKind",
    "ProviderRegistry",
    "Redacted",
    "ScriptedProvider",
    "ToolCallRecord",
    "ToolResult",
    "ToolRunner",
    "ToolSpec",
    "Usage",
    "band_for",
    "bucket_of",
    "in_candidate",
    "load_agent_file",
    "load_agent_text",
    "next_stage",
    "redact_input",
    "redact_text",
    "render_prompt",
    "rollback_reason",
]
