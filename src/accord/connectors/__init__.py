"""Capability contracts and the connectors that reach systems: Python callables, HTTP bound to
OpenAPI operations and MCP tools, each behind retries, a circuit breaker and a concurrency limit."""

from accord.connectors._capability import (
    CallContext,
    Capability,
    CapabilityRegistry,
    SideEffect,
)
from accord.connectors._catalogue import CatalogueInvalid, load_catalogue
from accord.connectors._http import (
    Credential,
    HttpConnector,
    OperationBinding,
    openapi_capabilities,
)
from accord.connectors._mcp import McpClient, McpTool, ToolBinding, ToolHints, mcp_capabilities
from accord.connectors._openapi import OpenApiOperation, load_document, operations
from accord.connectors._resilience import (
    BreakerSettings,
    CircuitBreaker,
    CircuitOpen,
    Endpoint,
    Endpoints,
    Resilience,
    Retries,
    resilient,
)
from accord.connectors._schema_model import JsonSchemaModel, schema_model

__all__ = [
    "BreakerSettings",
    "CallContext",
    "Capability",
    "CapabilityRegistry",
    "CatalogueInvalid",
    "CircuitBreaker",
    "CircuitOpen",
    "Credential",
    "Endpoint",
    "Endpoints",
    "HttpConnector",
    "JsonSchemaModel",
    "McpClient",
    "McpTool",
    "OpenApiOperation",
    "OperationBinding",
    "Resilience",
    "Retries",
    "SideEffect",
    "ToolBinding",
    "ToolHints",
    "load_catalogue",
    "load_document",
    "mcp_capabilities",
    "openapi_capabilities",
    "operations",
    "resilient",
    "schema_model",
]
