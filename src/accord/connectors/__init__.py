"""Capability contracts and the connectors that reach systems (Python callables for now)."""

from accord.connectors._capability import (
    CallContext,
    Capability,
    CapabilityRegistry,
    SideEffect,
)

__all__ = ["CallContext", "Capability", "CapabilityRegistry", "SideEffect"]
