"""Accord as an MCP server: governed capabilities offered as tools to external agents."""

from accord.mcp._server import (
    CHANNEL,
    ExposedTool,
    build_server,
    http_app,
    serve_http,
    serve_stdio,
)

__all__ = ["CHANNEL", "ExposedTool", "build_server", "http_app", "serve_http", "serve_stdio"]
