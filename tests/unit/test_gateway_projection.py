"""What a call needs a lawful basis for, and what of its result a purpose may see."""

from __future__ import annotations

from pydantic import BaseModel

from accord.connectors import Capability
from accord.gateway import project, required_categories


class _Any(BaseModel):
    pass


def _capability(**governance: object) -> Capability:
    return Capability(
        name="crm.lookup",
        input_model=_Any,
        output_model=_Any,
        handler=lambda request, ctx: {},
        **governance,  # type: ignore[arg-type]
    )


CRM = _capability(
    reads=("pd:Name", "pd:EmailAddress"),
    writes=("pd:TelephoneNumber",),
    fields={"name": "pd:Name", "email": "pd:EmailAddress", "phone": "pd:TelephoneNumber"},
)
RESULT = {"id": "c1", "name": "Ada", "email": "ada@example.org", "phone": "+44", "tier": "gold"}


def test_a_call_needs_a_basis_for_what_it_returns_and_writes() -> None:
    assert required_categories(CRM, ()) == ("pd:EmailAddress", "pd:Name", "pd:TelephoneNumber")


def test_narrowing_reads_cannot_narrow_away_writes() -> None:
    assert required_categories(CRM, ("pd:Name",)) == ("pd:Name", "pd:TelephoneNumber")


def test_a_capability_without_personal_data_needs_no_basis() -> None:
    assert required_categories(_capability(), ()) == ()


def test_projection_keeps_only_allowed_categories_and_plain_fields() -> None:
    output, withheld = project(CRM, RESULT, allowed=frozenset({"pd:Name"}))
    assert output == {"id": "c1", "name": "Ada", "tier": "gold"}
    assert withheld == ("email", "phone")


def test_no_limit_keeps_everything() -> None:
    assert project(CRM, RESULT, allowed=None) == (RESULT, ())


def test_the_callers_reads_narrow_the_result() -> None:
    output, withheld = project(CRM, RESULT, allowed=None, reads=("pd:EmailAddress",))
    assert set(output) == {"id", "email", "tier"}
    assert withheld == ("name", "phone")


def test_redaction_by_category_or_field_name() -> None:
    by_category = project(CRM, RESULT, allowed=None, redact=("pd:EmailAddress",))
    by_field = project(CRM, RESULT, allowed=None, redact=("phone",))
    assert by_category[1] == ("email",)
    assert by_field[1] == ("phone",)
