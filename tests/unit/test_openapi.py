"""OpenAPI documents read into operations with standalone contracts."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, ValidationError

from accord.connectors import (
    CapabilityRegistry,
    HttpConnector,
    OperationBinding,
    load_document,
    openapi_capabilities,
    operations,
)
from accord.errors import ConfigurationError


class Money(BaseModel):
    amount: float
    currency: str


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Money
    reason: str = ""


class Refund(BaseModel):
    refund_id: str
    order_id: str
    amount: Money


def _document() -> dict[str, Any]:
    app = FastAPI(title="billing")

    @app.get("/orders/{order_id}/refunds", operation_id="list_refunds")
    def list_refunds(order_id: str, limit: int = 10) -> list[Refund]:
        return []

    @app.post("/orders/{order_id}/refunds", operation_id="issue_refund", status_code=201)
    def issue_refund(
        order_id: str,
        body: RefundIn,
        idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    ) -> Refund:
        raise NotImplementedError

    @app.delete("/refunds/{refund_id}", operation_id="void_refund", status_code=204)
    def void_refund(refund_id: str) -> None:
        return None

    return app.openapi()


def test_parameters_and_an_object_body_sit_side_by_side_in_the_input() -> None:
    ops = {op.operation_id: op for op in operations(_document())}
    issue = ops["issue_refund"]
    assert (issue.method, issue.path, issue.body) == ("post", "/orders/{order_id}/refunds", "flat")
    assert issue.accepts_idempotency_key
    schema = issue.input_schema
    assert set(schema["properties"]) == {"order_id", "amount", "reason"}
    assert "Idempotency-Key" not in schema["properties"]
    assert schema["required"] == ["amount", "order_id"]
    assert schema["properties"]["amount"] == {"$ref": "#/$defs/Money"}
    assert set(schema["$defs"]) == {"Money"}
    assert schema["additionalProperties"] is False


def test_references_become_defs_so_a_contract_stands_alone() -> None:
    ops = {op.operation_id: op for op in operations(_document())}
    output = ops["issue_refund"].output_schema
    assert set(output["$defs"]) == {"Money"}
    assert "#/components" not in repr(output)


def test_answers_that_are_not_objects_are_wrapped() -> None:
    ops = {op.operation_id: op for op in operations(_document())}
    listed = ops["list_refunds"]
    assert listed.wrap == "items"
    assert listed.output_schema["required"] == ["items"]
    assert set(listed.output_schema["$defs"]) == {"Money", "Refund"}
    assert ops["void_refund"].wrap == "empty"
    assert not ops["list_refunds"].accepts_idempotency_key


def test_capabilities_take_their_contracts_and_defaults_from_the_document() -> None:
    connector = HttpConnector("billing", "http://127.0.0.1:1")
    found = {
        c.name: c
        for c in openapi_capabilities(
            connector,
            _document(),
            bindings={
                "issue_refund": OperationBinding(compensation="billing.void_refund"),
                "list_refunds": OperationBinding(),
                "void_refund": OperationBinding(),
            },
        )
    }
    issue = found["billing.issue_refund"]
    assert (issue.side_effect, issue.idempotent, issue.compensation) == (
        "write",
        True,
        "billing.void_refund",
    )
    assert (
        found["billing.list_refunds"].side_effect,
        found["billing.list_refunds"].idempotent,
    ) == (
        "read",
        True,
    )
    assert found["billing.void_refund"].idempotent, "DELETE is idempotent by HTTP semantics"
    issue.input_model.model_validate({"order_id": "o1", "amount": {"amount": 5, "currency": "EUR"}})
    with pytest.raises(ValidationError):
        issue.input_model.model_validate({"order_id": "o1", "amount": {"amount": "five"}})
    with pytest.raises(ValidationError):
        issue.input_model.model_validate(
            {"order_id": "o1", "amount": {"amount": 5, "currency": "EUR"}, "typo": 1}
        )
    registry = CapabilityRegistry()
    for capability in found.values():
        registry.add(capability)
    assert len(registry) == 3


def test_an_operation_that_is_not_there_is_named() -> None:
    connector = HttpConnector("billing", "http://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as caught:
        openapi_capabilities(connector, _document(), include=["issue_refnd"])
    assert "issue_refnd" in caught.value.message
    assert "issue_refund" in (caught.value.hint or "")


def test_openapi_3_0_nullable_becomes_a_type_union() -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {
                "get": {
                    "operationId": "get_x",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "note": {"type": "string", "nullable": True}
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            }
        },
    }
    [op] = operations(document)
    assert op.output_schema["properties"]["note"]["type"] == ["string", "null"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"swagger": "2.0"}', "not an OpenAPI 3 document"),
        ("{not json", "neither JSON nor YAML"),
    ],
)
def test_documents_that_are_not_openapi_3_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_document("svc.json", text=text)
    assert message in caught.value.message


def test_a_dangling_reference_is_reported() -> None:
    document = _document()
    del document["components"]["schemas"]["Money"]
    with pytest.raises(ConfigurationError) as caught:
        operations(document)
    assert "Money" in caught.value.message
