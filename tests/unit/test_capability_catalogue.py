"""Capability catalogues: YAML contracts bound to Python functions, checked before anything is
registered, and enforced by the gateway like any other contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from accord.connectors import (
    CallContext,
    CapabilityRegistry,
    CatalogueInvalid,
    load_catalogue,
    schema_model,
)
from accord.consent import validate_categories
from accord.errors import CapabilityFailed, ConfigurationError, Diagnostic
from accord.gateway import Executed, Gateway, Invocation
from accord.sandbox import register as register_retail
from tests.unit.diagnostics import only

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "examples" / "capabilities" / "retail.yaml"
THIS = "tests.unit.test_capability_catalogue"
CONTEXT = CallContext(
    tenant_id="default", run_id="run-1", block="b", visit=1, attempt=1, idempotency_key="k-1"
)

received: list[object] = []


def echo(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    received.append(payload)
    return {"name": payload["name"]}


class Named(BaseModel):
    name: str


def echo_model(payload: dict[str, Any], ctx: CallContext) -> Named:
    return Named(name=payload["name"])


def wrong_output(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return {"name": 42}


def one_parameter(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


NOT_A_FUNCTION = "a string"

# Line numbers below refer to this file; each bad case replaces or inserts lines.
GOOD = f"""\
catalogue: 1
capabilities:
  - name: test.echo
    side_effect: read
    idempotent: true
    reads: [pd:Name]
    fields: {{name: pd:Name}}
    input:
      type: object
      properties: {{name: {{type: string}}}}
      required: [name]
    output:
      type: object
      properties: {{name: {{type: string}}}}
      required: [name]
    python: {THIS}:echo
"""


def write(tmp_path: Path, text: str, name: str = "catalogue.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(replace: dict[int, str]) -> str:
    """``GOOD`` with the given 1-based lines replaced (a replacement may hold several lines)."""
    lines = GOOD.splitlines()
    for number, text in replace.items():
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


def problems(path: Path, registry: CapabilityRegistry) -> list[Diagnostic]:
    before = [c.name for c in registry]
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(path, registry, check_categories=validate_categories)
    assert [c.name for c in registry] == before, "a bad catalogue registered something"
    assert str(path) in str(caught.value)
    return caught.value.diagnostics


def invoke(registry: CapabilityRegistry, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Call ``name`` through a gateway that checks contracts (governance is tested elsewhere)."""
    gateway = Gateway(registry, governance=None)
    try:
        outcome = gateway.session("default", None).invoke(
            Invocation(name, payload, CONTEXT), now=0.0
        )
    finally:
        gateway.close()
    assert isinstance(outcome, Executed), outcome
    return outcome.output


def test_retail_example_registers_every_capability_with_its_governance() -> None:
    registry = CapabilityRegistry()
    loaded = load_catalogue(RETAIL, registry)

    assert [c.name for c in loaded] == [
        "crm.lookup_customer",
        "crm.update_email",
        "crm.revert_email",
        "identity.verify",
    ]
    lookup = registry.get("crm.lookup_customer")
    assert lookup.source == f"{RETAIL}:5"
    assert (lookup.side_effect, lookup.idempotent, lookup.region) == ("read", True, "eu-west-1")
    assert lookup.reads == ("pd:Name", "pd:EmailAddress", "pd:TelephoneNumber")
    assert dict(lookup.fields) == {
        "name": "pd:Name",
        "email": "pd:EmailAddress",
        "phone": "pd:TelephoneNumber",
    }
    update = registry.get("crm.update_email")
    assert (update.side_effect, update.compensation, update.writes) == (
        "write",
        "crm.revert_email",
        ("pd:EmailAddress",),
    )
    assert registry.get("identity.verify").data_categories == ("pd:OfficialID",)


def test_catalogue_loads_beside_python_capabilities() -> None:
    registry = CapabilityRegistry()
    register_retail(registry)
    load_catalogue(RETAIL, registry)
    assert {"orders.lookup", "crm.lookup_customer"} <= {c.name for c in registry}


def test_gateway_calls_the_bound_function_with_the_plain_request(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    load_catalogue(write(tmp_path, GOOD), registry)
    received.clear()

    assert invoke(registry, "test.echo", {"name": "Ada"}) == {"name": "Ada"}
    assert received == [{"name": "Ada"}]
    assert type(received[0]) is dict


def test_bound_function_may_answer_with_a_pydantic_model(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    load_catalogue(write(tmp_path, edited({16: f"    python: {THIS}:echo_model"})), registry)
    assert invoke(registry, "test.echo", {"name": "Grace"}) == {"name": "Grace"}


def test_gateway_refuses_input_that_breaks_the_contract(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    load_catalogue(RETAIL, registry)

    with pytest.raises(CapabilityFailed) as caught:
        invoke(registry, "crm.lookup_customer", {"customer_id": "42", "extra": True})

    assert caught.value.error_type == "ContractViolation"
    assert caught.value.retryable is False
    message = caught.value.message
    assert "input for 'crm.lookup_customer' breaks its contract" in message
    assert "(at /customer_id)" in message
    assert "'extra' was unexpected" in message


def test_gateway_refuses_output_that_breaks_the_contract(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    load_catalogue(write(tmp_path, edited({16: f"    python: {THIS}:wrong_output"})), registry)

    with pytest.raises(CapabilityFailed) as caught:
        invoke(registry, "test.echo", {"name": "Ada"})

    assert caught.value.error_type == "ContractViolation"
    assert caught.value.retryable is False
    assert "output of 'test.echo' breaks its contract" in caught.value.message
    assert "42 is not of type 'string' (at /name)" in caught.value.message


def test_sandbox_crm_answers_through_the_gateway() -> None:
    registry = CapabilityRegistry()
    load_catalogue(RETAIL, registry)

    customer = invoke(registry, "crm.lookup_customer", {"customer_id": "cus_12345"})
    again = invoke(registry, "crm.lookup_customer", {"customer_id": "cus_12345"})
    change = invoke(registry, "crm.update_email", {"customer_id": "cus_12345", "email": "a@b.eu"})
    verified = invoke(registry, "identity.verify", {"customer_id": "cus_12347"})

    assert customer == again
    assert set(customer) == {"customer_id", "name", "email", "phone", "tier"}
    assert change["status"] == "updated" and change["change_id"].startswith("chg_")
    assert verified["verified"] is False
    with pytest.raises(CapabilityFailed) as caught:
        invoke(registry, "crm.lookup_customer", {"customer_id": "cus_00000"})
    assert (caught.value.error_type, caught.value.retryable) == ("CustomerNotFound", False)


BAD_CASES = {
    "unknown key": (
        {5: "    idempotant: true"},
        5,
        "capability 'test.echo': unknown field 'idempotant'",
        "did you mean 'idempotent'?",
    ),
    "wrong side effect": (
        {4: "    side_effect: reed"},
        4,
        "side_effect must be read, write or irreversible, not 'reed'",
        "did you mean 'read'?",
    ),
    "missing side effect": (
        {4: "    description: no side effect"},
        3,
        "missing required field 'side_effect'",
        "add it",
    ),
    "write without idempotency": (
        {4: "    side_effect: write", 5: "    description: may act twice"},
        3,
        "capability 'test.echo' is a write; say whether it is idempotent",
        "idempotent: true",
    ),
    "category not prefix:Name": (
        {6: "    reads: [Name]", 7: "    fields: {}"},
        6,
        "'Name' is not a data category",
        "pd:EmailAddress",
    ),
    "unknown DPV-PD category": (
        {6: "    reads: [pd:Nmae]", 7: "    fields: {}"},
        6,
        "capability 'test.echo': unknown DPV-PD category 'pd:Nmae'; did you mean 'pd:Name'",
        "your organisation's own prefix",
    ),
    "field not in the output schema": (
        {7: "    fields: {nam: pd:Name}"},
        7,
        "field 'nam' is not a property of the output",
        "did you mean 'name'?",
    ),
    "field category not read": (
        {7: "    fields: {name: pd:EmailAddress}"},
        7,
        "field 'name' carries pd:EmailAddress, which 'reads' does not list",
        "add pd:EmailAddress to reads",
    ),
    "bad JSON schema": (
        {14: "      properties: {name: {type: strin}}"},
        14,
        "the output schema is not valid",
        "draft 2020-12",
    ),
    "bad pattern in a JSON schema": (
        {10: "      properties: {name: {type: string, pattern: '('}}"},
        10,
        "the input schema is not valid: '(' is not a 'regex'",
        "draft 2020-12",
    ),
    "schema not an object": (
        {9: "      type: array"},
        9,
        "a contract must be an object schema",
        "type: object",
    ),
    "reference outside the contract": (
        {10: "      properties: {name: {$ref: 'https://example.com/name.json'}}"},
        10,
        "points outside the contract",
        "draft 2020-12",
    ),
    "unknown compensation": (
        {4: "    side_effect: write\n    compensation: test.undo"},
        5,
        "compensation 'test.undo' is not a known capability",
        "declare it in this catalogue",
    ),
    "compensation of a read": (
        {4: "    side_effect: read\n    compensation: test.echo"},
        5,
        "capability 'test.echo' is a read; it has nothing to compensate",
        "remove compensation",
    ),
    "unimportable module": (
        {16: "    python: tests.unit.no_such_module:echo"},
        16,
        "cannot import module 'tests.unit.no_such_module'",
        "check the module path",
    ),
    "missing function": (
        {16: f"    python: {THIS}:no_such_function"},
        16,
        f"module '{THIS}' has no attribute 'no_such_function'",
        "define no_such_function",
    ),
    "binding not callable": (
        {16: f"    python: {THIS}:NOT_A_FUNCTION"},
        16,
        f"{THIS}:NOT_A_FUNCTION is a str, not a function",
        "(payload: dict, ctx: CallContext)",
    ),
    "binding with the wrong parameters": (
        {16: f"    python: {THIS}:one_parameter"},
        16,
        "cannot be called with (payload, ctx)",
        "(payload: dict, ctx: CallContext)",
    ),
    "binding not module:function": (
        {16: "    python: tests.unit.echo"},
        16,
        "binding 'tests.unit.echo' is not module:function",
        "accord.sandbox._crm:lookup_customer",
    ),
    "unknown format version": (
        {1: "catalogue: 2"},
        1,
        "unknown catalogue format 2",
        "catalogue: 1",
    ),
    "duplicate key": (
        {5: "    side_effect: write"},
        5,
        "duplicate key 'side_effect'",
        "the first 'side_effect' is on line 4",
    ),
    "invalid YAML": (
        {7: "    fields: {name: pd:Name"},
        8,
        "invalid YAML",
        "check indentation",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_catalogue_is_located_and_registers_nothing(tmp_path: Path, case: str) -> None:
    replace, line, message, hint = BAD_CASES[case]
    path = write(tmp_path, edited(replace))
    registry = CapabilityRegistry()
    register_retail(registry)

    diagnostic = only(problems(path, registry))

    assert (diagnostic.file, diagnostic.line) == (str(path), line), diagnostic.render()
    assert message in diagnostic.message, diagnostic.render()
    assert diagnostic.hint is not None and hint in diagnostic.hint, diagnostic.render()
    assert diagnostic.render().startswith(f"{path}:{line}:")


def test_without_a_vocabulary_any_prefixed_category_is_accepted(tmp_path: Path) -> None:
    text = edited({6: "    reads: [pd:Nmae, acme:LoyaltyTier]", 7: "    fields: {}"})

    (loaded,) = load_catalogue(write(tmp_path, text), CapabilityRegistry())

    assert loaded.reads == ("pd:Nmae", "acme:LoyaltyTier")


def test_duplicate_name_in_one_file_points_at_the_second(tmp_path: Path) -> None:
    entry = GOOD.split("capabilities:\n", 1)[1]
    path = write(tmp_path, GOOD + entry)

    diagnostic = only(problems(path, CapabilityRegistry()))

    assert diagnostic.line == 17
    assert diagnostic.message == "capability 'test.echo' is declared twice"
    assert diagnostic.hint is not None and "line 3" in diagnostic.hint


def test_name_already_in_the_registry_is_refused(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    load_catalogue(write(tmp_path, GOOD, "first.yaml"), registry)

    diagnostic = only(problems(write(tmp_path, GOOD, "second.yaml"), registry))

    assert diagnostic.line == 3
    assert "'test.echo' is already registered (from " in diagnostic.message
    assert "first.yaml:3)" in diagnostic.message


def test_compensation_may_name_a_registered_capability(tmp_path: Path) -> None:
    registry = CapabilityRegistry()
    register_retail(registry)
    text = edited({4: "    side_effect: irreversible\n    compensation: payments.refund"})

    (loaded,) = load_catalogue(write(tmp_path, text), registry)

    assert loaded.compensation == "payments.refund"
    assert loaded.idempotent is True


def test_one_bad_capability_keeps_the_good_ones_out_and_all_problems_are_listed(
    tmp_path: Path,
) -> None:
    entry = GOOD.split("capabilities:\n", 1)[1]
    second = entry.replace("test.echo", "test.other").replace(":echo", ":missing")
    third = entry.replace("test.echo", "test.third").replace("side_effect: read", "side_effect: r")
    path = write(tmp_path, GOOD + second + third)
    registry = CapabilityRegistry()

    found = problems(path, registry)

    assert [(d.line, d.path) for d in found] == [
        (30, "capabilities[1].python"),
        (32, "capabilities[2].side_effect"),
    ]
    assert len(registry) == 0


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    diagnostic = only(problems(tmp_path / "missing.yaml", CapabilityRegistry()))
    assert "cannot read the catalogue" in diagnostic.message


def test_catalogue_invalid_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_catalogue(write(tmp_path, edited({4: "    side_effect: reed"})), CapabilityRegistry())


SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"Money": {"type": "number", "minimum": 0}},
    "properties": {
        "amount": {"$ref": "#/$defs/Money"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["amount"],
    "additionalProperties": False,
}


def test_schema_model_returns_the_declared_schema() -> None:
    model = schema_model("billing.charge input", SCHEMA)

    assert model.model_json_schema() == SCHEMA
    assert model.model_json_schema() is not SCHEMA
    assert model.__name__ == "BillingChargeInput"


def test_schema_model_dumps_the_plain_object() -> None:
    model = schema_model("billing.charge input", SCHEMA)
    data = {"amount": 12.5, "tags": ["a"], "when": "2025-01-31"}

    assert model.model_validate(data).model_dump(mode="json") == data


def test_schema_model_reports_each_violation_with_its_pointer() -> None:
    model = schema_model("billing.charge input", SCHEMA)

    with pytest.raises(ValidationError) as caught:
        model.model_validate({"amount": -1, "tags": ["a", 2], "other": 1})

    errors = caught.value.errors(include_url=False)
    assert [(e["loc"], e["ctx"]["pointer"], e["ctx"]["keyword"]) for e in errors] == [
        ((), "", "additionalProperties"),
        (("amount",), "/amount", "minimum"),
        (("tags", 1), "/tags/1", "type"),
    ]
    assert errors[2]["msg"] == "2 is not of type 'string' (at /tags/1)"


def test_schema_model_refuses_what_is_not_an_object() -> None:
    model = schema_model("billing.charge input", SCHEMA)
    with pytest.raises(ValidationError):
        model.model_validate(["amount", 1])


def test_schema_model_refuses_a_bad_schema_naming_where() -> None:
    bad = {"type": "object", "properties": {"amount": {"type": "money"}}}

    with pytest.raises(ConfigurationError) as caught:
        schema_model("billing.charge input", bad)

    assert "billing.charge input" in caught.value.message
    assert "/properties/amount/type" in caught.value.message


def test_schema_model_refuses_a_dangling_reference() -> None:
    bad = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nothing"}}}

    with pytest.raises(ConfigurationError) as caught:
        schema_model("x input", bad)

    assert "/properties/a/$ref: '#/$defs/Nothing' points at nothing" in caught.value.message
