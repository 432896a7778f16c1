"""Capability contracts and the connectors that reach systems (Python callables for now)."""

from accord.connectors._capability import (
    CallContext,
    Capability,
    CapabilityRegistry,
    SideEffect,
)
from accord.connectors._catalogue import CatalogueInvalid, load_catalogue
from accord.connectors._schema_model import JsonSchemaModel, schema_model

__all__ = [
    "CallContext",
    "Capability",
    "CapabilityRegistry",
    "CatalogueInvalid",
    "JsonSchemaModel",
    "SideEffect",
    "load_catalogue",
    "schema_model",
]
