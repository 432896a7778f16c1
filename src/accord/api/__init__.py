"""The HTTP surface: health, readiness, metrics, inbound events and the ``/v1`` API, with its
bearer-token authentication and Cedar-decided access."""

from accord.api._access import (
    OPERATIONS,
    Operation,
    compile_access,
    role_matrix,
    role_table,
    schema_text,
)
from accord.api._app import api_context, create_app
from accord.api._auth import ROLES, Principal, TokenVerifier, Unauthenticated, issue_token

__all__ = [
    "OPERATIONS",
    "ROLES",
    "Operation",
    "Principal",
    "TokenVerifier",
    "Unauthenticated",
    "api_context",
    "compile_access",
    "create_app",
    "issue_token",
    "role_matrix",
    "role_table",
    "schema_text",
]
