"""MCP servers declared in a capability catalogue, their tools bound to capabilities."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from accord.connectors import CallContext, CapabilityRegistry, CatalogueInvalid, load_catalogue
from accord.consent import validate_categories
from accord.errors import CapabilityFailed

SERVER = Path(__file__).parents[1] / "mcp_tools_server.py"


def _catalogue(tmp_path: Path, capabilities: str) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(
        "catalogue: 1\n"
        "connectors:\n"
        f"  - {{name: crmtools, kind: mcp, command: ['{sys.executable}', '{SERVER}']}}\n"
        "capabilities:\n" + capabilities
    )
    return path


def test_tools_are_bound_with_their_schemas_and_the_catalogues_governance(
    tmp_path: Path,
) -> None:
    registry = CapabilityRegistry()
    load_catalogue(
        _catalogue(
            tmp_path,
            "  - name: crm.find\n"
            "    connector: crmtools\n"
            "    tool: lookup_customer\n"
            "    side_effect: read\n"
            "    reads: [pd:Name, pd:EmailAddress]\n"
            "    fields: {name: pd:Name, email: pd:EmailAddress}\n"
            "  - {name: crm.note, connector: crmtools, tool: add_note, side_effect: write,"
            " idempotent: true}\n"
            "  - {name: crm.close, connector: crmtools, tool: close_account,"
            " side_effect: irreversible, idempotent: false}\n",
        ),
        registry,
        check_categories=validate_categories,
    )
    try:
        find = registry.get("crm.find")
        assert find.fields == {"name": "pd:Name", "email": "pd:EmailAddress"}
        assert find.source.endswith("(mcp:crmtools/lookup_customer)")
        assert "customer_id" in find.input_schema()["properties"]
        note = registry.get("crm.note")
        context = CallContext("default", "run_1", "b", 1, 1, "run_1/b/1", deadline=time.time() + 20)
        answer = note.handler(
            note.input_model.model_validate({"customer_id": "c1", "note": "called"}), context
        )
        assert answer["idempotency_key"] == "run_1/b/1"
        close = registry.get("crm.close")
        with pytest.raises(CapabilityFailed) as caught:
            close.handler(close.input_model.model_validate({"customer_id": "c1"}), context)
        assert caught.value.error_type == "ToolError" and caught.value.attempts == 1
    finally:
        registry.close()


def test_a_tool_the_server_does_not_offer_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(
            _catalogue(
                tmp_path,
                "  - {name: crm.x, connector: crmtools, tool: lookup_customr, side_effect: read}\n",
            ),
            CapabilityRegistry(),
        )
    [diagnostic] = caught.value.diagnostics
    assert "offers no tool 'lookup_customr'" in diagnostic.message
    assert "lookup_customer" in (diagnostic.hint or "")
