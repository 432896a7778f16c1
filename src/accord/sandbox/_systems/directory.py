"""The employee directory: the enterprise's staff, what access exists and who holds it.

An employee is ``active``, ``suspended`` or has ``left``; only an active one may be granted
access, and only by another employee who is active. An entitlement is one level of access
(``read``, ``write`` or ``admin``) to one system, with the longest a grant of it may last. A grant
is ``active`` until it is revoked (which is how it is compensated) or its ``expires_at`` passes by
the service's clock, when it reads as ``expired``; an employee holds at most one active grant of
an entitlement. Revoking a revoked grant answers it unchanged.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import stable_number
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, iso, next_id

EmployeeStatus = Literal["active", "suspended", "left"]
Department = Literal["support", "finance", "engineering", "sales", "people"]
System = Literal["crm", "billing", "orders", "helpdesk", "kyc", "warehouse", "finance"]
Level = Literal["read", "write", "admin"]
GrantStatus = Literal["active", "revoked", "expired"]

EMPLOYEE_ID_PATTERN = r"^emp_[0-9]{4}$"
ENTITLEMENT_ID_PATTERN = r"^ent_[a-z]+_(read|write|admin)$"
MAX_GRANT_HOURS = 2160

EmployeeId = Annotated[
    str, Field(pattern=EMPLOYEE_ID_PATTERN, description="employee id, e.g. emp_0001")
]
EmployeeIdPath = Annotated[
    str, PathParam(pattern=EMPLOYEE_ID_PATTERN, description="employee id, e.g. emp_0001")
]
EntitlementId = Annotated[
    str, Field(pattern=ENTITLEMENT_ID_PATTERN, description="entitlement id, e.g. ent_crm_read")
]
EntitlementIdPath = Annotated[
    str,
    PathParam(pattern=ENTITLEMENT_ID_PATTERN, description="entitlement id, e.g. ent_crm_read"),
]
GrantIdPath = Annotated[str, PathParam(pattern=r"^grt_[0-9]{6}$", description="e.g. grt_000001")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    employee_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL,
    title TEXT NOT NULL,
    manager_id TEXT REFERENCES employees (employee_id),
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS employees_by_manager ON employees (manager_id, employee_id);
CREATE TABLE IF NOT EXISTS entitlements (
    entitlement_id TEXT PRIMARY KEY,
    system TEXT NOT NULL,
    level TEXT NOT NULL,
    sensitive INTEGER NOT NULL,
    max_duration_hours INTEGER NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees (employee_id),
    entitlement_id TEXT NOT NULL REFERENCES entitlements (entitlement_id),
    approved_by TEXT NOT NULL REFERENCES employees (employee_id),
    justification TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS grants_by_employee ON grants (employee_id, grant_id);
"""


class Employee(Strict):
    """A member of staff."""

    employee_id: str
    name: str
    email: str
    department: Department
    title: str
    manager_id: str | None = Field(description="whom they report to; null for the top")
    status: EmployeeStatus


class EmployeeList(Strict):
    """A manager's direct reports, by employee id."""

    manager_id: str
    employees: list[Employee]


class Entitlement(Strict):
    """One level of access to one system."""

    entitlement_id: str
    system: System
    level: Level
    sensitive: bool
    max_duration_hours: int = Field(description="the longest a grant of it may last")
    description: str


class EntitlementList(Strict):
    """Every entitlement, by id."""

    entitlements: list[Entitlement]


class NewGrant(StrictInput):
    """Access to grant an employee, with who approved it and why."""

    employee_id: EmployeeId
    entitlement_id: EntitlementId
    duration_hours: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_GRANT_HOURS,
            description="how long the grant lasts; at most the entitlement's max_duration_hours",
        ),
    ]
    approved_by: Annotated[
        str,
        Field(
            pattern=EMPLOYEE_ID_PATTERN,
            description="the approving employee: active, and not the grantee",
        ),
    ]
    justification: Text


class Grant(Strict):
    """An employee's access to an entitlement, for a time."""

    grant_id: str
    employee_id: str
    entitlement_id: str
    approved_by: str
    justification: str
    granted_at: dt.datetime
    expires_at: dt.datetime
    status: GrantStatus = Field(description="expired once expires_at has passed, unless revoked")
    revoked_at: dt.datetime | None
    revoked_reason: str | None


class GrantList(Strict):
    """Grants, by id."""

    grants: list[Grant]


class Revocation(StrictInput):
    """Why access is revoked."""

    reason: Text


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The directory service on ``database``."""

    def seed(tx: sqlite3.Connection) -> None:
        _seed(tx, dt.datetime.fromtimestamp(int(clock.now()), tz=dt.UTC))

    service = SandboxService(
        "directory",
        database,
        title="Sandbox directory",
        description="The employee directory and access management: employees, entitlements, "
        "access grants and their revocation.",
        schema=SCHEMA,
        seed=seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.get(
        "/employees/{employee_id}",
        operation_id="get_employee",
        summary="Get an employee",
        response_model=Employee,
        responses=problems(404, 422),
    )
    def get_employee(employee_id: EmployeeIdPath) -> Employee:
        with store.transaction() as tx:
            return _employee(tx, employee_id)

    @app.get(
        "/employees",
        operation_id="list_employees",
        summary="List a manager's direct reports",
        response_model=EmployeeList,
        responses=problems(404, 422),
    )
    def list_employees(
        manager_id: Annotated[
            str, Query(pattern=EMPLOYEE_ID_PATTERN, description="the manager's employee id")
        ],
    ) -> EmployeeList:
        with store.transaction() as tx:
            _employee(tx, manager_id)
            rows = tx.execute(
                "SELECT * FROM employees WHERE manager_id = ? ORDER BY employee_id",
                (manager_id,),
            ).fetchall()
        return EmployeeList(
            manager_id=manager_id,
            employees=[Employee.model_validate(dict(row)) for row in rows],
        )

    @app.get(
        "/entitlements",
        operation_id="list_entitlements",
        summary="List every entitlement",
        response_model=EntitlementList,
        responses=problems(),
    )
    def list_entitlements() -> EntitlementList:
        with store.transaction() as tx:
            rows = tx.execute("SELECT * FROM entitlements ORDER BY entitlement_id").fetchall()
        return EntitlementList(entitlements=[_entitlement_of(row) for row in rows])

    @app.get(
        "/entitlements/{entitlement_id}",
        operation_id="get_entitlement",
        summary="Get an entitlement and the longest a grant of it may last",
        response_model=Entitlement,
        responses=problems(404, 422),
    )
    def get_entitlement(entitlement_id: EntitlementIdPath) -> Entitlement:
        with store.transaction() as tx:
            return _entitlement(tx, entitlement_id)

    @app.post(
        "/grants",
        operation_id="grant_access",
        summary="Grant an employee an entitlement for a time (compensate with revoke_access)",
        status_code=201,
        response_model=Grant,
        responses=problems(404, 409, 422),
    )
    def grant_access(request: NewGrant, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Grant:
            employee = _employee(tx, request.employee_id)
            entitlement = _entitlement(tx, request.entitlement_id)
            approver = _employee(tx, request.approved_by)
            if request.approved_by == request.employee_id:
                raise ProblemError(
                    409,
                    "self_approval",
                    f"{request.employee_id} cannot approve their own access; another employee "
                    "must approve it",
                )
            if employee.status != "active":
                raise ProblemError(
                    409,
                    "employee_not_active",
                    f"employee {employee.employee_id} is {employee.status}; only an active "
                    "employee can be granted access",
                )
            if approver.status != "active":
                raise ProblemError(
                    409,
                    "approver_not_active",
                    f"approver {approver.employee_id} is {approver.status}; only an active "
                    "employee can approve access",
                )
            if request.duration_hours > entitlement.max_duration_hours:
                raise ProblemError(
                    409,
                    "duration_exceeds_limit",
                    f"{request.duration_hours} hours is longer than {entitlement.entitlement_id} "
                    f"may be granted for (at most {entitlement.max_duration_hours} hours)",
                )
            now = service.now()
            held = tx.execute(
                "SELECT grant_id, expires_at FROM grants "
                "WHERE employee_id = ? AND entitlement_id = ? AND revoked_at IS NULL "
                "AND expires_at > ? ORDER BY grant_id LIMIT 1",
                (request.employee_id, request.entitlement_id, iso(now)),
            ).fetchone()
            if held is not None:
                raise ProblemError(
                    409,
                    "already_granted",
                    f"{request.employee_id} already holds {request.entitlement_id} by grant "
                    f"{held['grant_id']} until {held['expires_at']}; revoke it first, or use it",
                )
            grant_id = next_id(tx, "grants", "grt")
            tx.execute(
                "INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    grant_id,
                    request.employee_id,
                    request.entitlement_id,
                    request.approved_by,
                    request.justification,
                    iso(now),
                    iso(now + dt.timedelta(hours=request.duration_hours)),
                ),
            )
            return _grant(tx, grant_id, now)

        return mutation.apply(effect)

    @app.post(
        "/grants/{grant_id}/revoke",
        operation_id="revoke_access",
        summary="Revoke a grant (a revoked grant is answered unchanged)",
        response_model=Grant,
        responses=problems(404, 422),
    )
    def revoke_access(grant_id: GrantIdPath, revocation: Revocation, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Grant:
            now = service.now()
            current = _grant(tx, grant_id, now)
            if current.status == "revoked":
                return current
            tx.execute(
                "UPDATE grants SET revoked_at = ?, revoked_reason = ? WHERE grant_id = ?",
                (iso(now), revocation.reason, grant_id),
            )
            return _grant(tx, grant_id, now)

        return mutation.apply(effect)

    @app.get(
        "/grants/{grant_id}",
        operation_id="get_grant",
        summary="Get a grant and whether it is active, revoked or expired",
        response_model=Grant,
        responses=problems(404, 422),
    )
    def get_grant(grant_id: GrantIdPath) -> Grant:
        with store.transaction() as tx:
            return _grant(tx, grant_id, service.now())

    @app.get(
        "/grants",
        operation_id="list_grants",
        summary="List grants, by employee and status",
        response_model=GrantList,
        responses=problems(422),
    )
    def list_grants(
        employee_id: Annotated[
            str | None, Query(pattern=EMPLOYEE_ID_PATTERN, description="whose grants")
        ] = None,
        status: Annotated[GrantStatus | None, Query()] = None,
    ) -> GrantList:
        now = service.now()
        query = "SELECT grant_id FROM grants"
        arguments: tuple[str, ...] = ()
        if employee_id is not None:
            query += " WHERE employee_id = ?"
            arguments = (employee_id,)
        with store.transaction() as tx:
            rows = tx.execute(query + " ORDER BY grant_id", arguments).fetchall()
            grants = [_grant(tx, row["grant_id"], now) for row in rows]
        return GrantList(grants=[g for g in grants if status is None or g.status == status])

    return service


def _employee(tx: sqlite3.Connection, employee_id: str) -> Employee:
    row = tx.execute("SELECT * FROM employees WHERE employee_id = ?", (employee_id,)).fetchone()
    if row is None:
        raise not_found("employee", employee_id)
    return Employee.model_validate(dict(row))


def _entitlement(tx: sqlite3.Connection, entitlement_id: str) -> Entitlement:
    row = tx.execute(
        "SELECT * FROM entitlements WHERE entitlement_id = ?", (entitlement_id,)
    ).fetchone()
    if row is None:
        raise not_found("entitlement", entitlement_id)
    return _entitlement_of(row)


def _entitlement_of(row: sqlite3.Row) -> Entitlement:
    return Entitlement.model_validate({**dict(row), "sensitive": bool(row["sensitive"])})


def _grant(tx: sqlite3.Connection, grant_id: str, now: dt.datetime) -> Grant:
    row = tx.execute("SELECT * FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
    if row is None:
        raise not_found("grant", grant_id)
    status: GrantStatus = (
        "revoked"
        if row["revoked_at"] is not None
        else "expired"
        if row["expires_at"] <= iso(now)
        else "active"
    )
    return Grant.model_validate({**dict(row), "status": status})


_DEPARTMENTS: tuple[Department, ...] = ("support", "finance", "engineering", "sales", "people")
_HEAD_TITLES: dict[Department, str] = {
    "support": "Head of Support",
    "finance": "Head of Finance",
    "engineering": "Head of Engineering",
    "sales": "Head of Sales",
    "people": "Head of People",
}
_STAFF_TITLES: dict[Department, tuple[str, ...]] = {
    "support": ("Support Agent", "Senior Support Agent", "Support Specialist"),
    "finance": ("Accountant", "Financial Analyst", "Billing Specialist"),
    "engineering": ("Software Engineer", "Senior Software Engineer", "Site Reliability Engineer"),
    "sales": ("Account Executive", "Sales Representative", "Account Manager"),
    "people": ("People Partner", "Recruiter", "People Operations Specialist"),
}
_FIRST_NAMES = (
    *("Amara", "Bruno", "Chloe", "Dmitri", "Elena", "Farah", "Gustav", "Hana", "Idris", "Julia"),
    *("Kenji", "Lucia", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Samir", "Tove"),
)
_LAST_NAMES = (
    *("Abebe", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad"),
    *("Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov"),
)

EMPLOYEES = 40
"""Seeded employees: ``emp_0001`` at the top, ``emp_0002``..``emp_0006`` heading the
departments in the order of ``_DEPARTMENTS``, and the rest reporting to their head."""
_SUSPENDED = frozenset({"emp_0012", "emp_0029"})
_LEFT = frozenset({"emp_0035"})

_SYSTEM_LEVELS: tuple[tuple[System, Level], ...] = (
    *(("crm", "read"), ("crm", "write"), ("crm", "admin")),
    *(("billing", "read"), ("billing", "write"), ("billing", "admin")),
    *(("orders", "read"), ("orders", "write")),
    *(("helpdesk", "read"), ("helpdesk", "write")),
    *(("kyc", "read"), ("warehouse", "read")),
    *(("finance", "read"), ("finance", "write")),
)
_MAX_HOURS: dict[tuple[Level, bool], int] = {
    ("read", False): MAX_GRANT_HOURS,
    ("write", False): 720,
    ("read", True): 720,
    ("write", True): 168,
    ("admin", True): 72,
}
_SYSTEM_NAMES: dict[System, str] = {
    "crm": "the CRM's customer records",
    "billing": "billing accounts, invoices and refunds",
    "orders": "the shop's orders",
    "helpdesk": "helpdesk tickets",
    "kyc": "identity verifications",
    "warehouse": "the warehouse's stock and shipments",
    "finance": "the general ledger",
}
_LEVEL_VERBS: dict[Level, str] = {
    "read": "Read",
    "write": "Change",
    "admin": "Administer",
}

_SEEDED_GRANTS: tuple[tuple[str, str, str, int, int, bool], ...] = (
    ("emp_0007", "ent_helpdesk_write", "emp_0002", 10, 720, False),
    ("emp_0008", "ent_finance_read", "emp_0003", 20, 720, False),
    ("emp_0009", "ent_orders_read", "emp_0004", 30, 2160, False),
    ("emp_0010", "ent_crm_write", "emp_0005", 5, 720, False),
    ("emp_0014", "ent_billing_admin", "emp_0004", 100, 72, False),
    ("emp_0017", "ent_crm_read", "emp_0002", 50, 2160, True),
)
"""Employee, entitlement, approver, hours before the first start, duration, revoked."""


def _seed(tx: sqlite3.Connection, now: dt.datetime) -> None:
    used: set[tuple[str, str]] = set()
    for index in range(1, EMPLOYEES + 1):
        employee_id = f"emp_{index:04d}"
        first, last = _name(employee_id, used)
        if index == 1:
            department: Department = "people"
            title, manager = "Chief Executive Officer", None
        elif index <= 1 + len(_DEPARTMENTS):
            department = _DEPARTMENTS[index - 2]
            title, manager = _HEAD_TITLES[department], "emp_0001"
        else:
            department = _DEPARTMENTS[(index - 2 - len(_DEPARTMENTS)) % len(_DEPARTMENTS)]
            titles = _STAFF_TITLES[department]
            title = titles[stable_number("title", employee_id) % len(titles)]
            manager = f"emp_{_DEPARTMENTS.index(department) + 2:04d}"
        status: EmployeeStatus = (
            "suspended"
            if employee_id in _SUSPENDED
            else "left"
            if employee_id in _LEFT
            else "active"
        )
        tx.execute(
            "INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                employee_id,
                f"{first} {last}",
                f"{first}.{last}@staff.example.com".lower(),
                department,
                title,
                manager,
                status,
            ),
        )
    for system, level in _SYSTEM_LEVELS:
        sensitive = level == "admin" or system == "finance"
        tx.execute(
            "INSERT INTO entitlements VALUES (?, ?, ?, ?, ?, ?)",
            (
                f"ent_{system}_{level}",
                system,
                level,
                int(sensitive),
                _MAX_HOURS[(level, sensitive)],
                f"{_LEVEL_VERBS[level]} {_SYSTEM_NAMES[system]}",
            ),
        )
    for number, (employee, entitlement, approver, ago, hours, revoked) in enumerate(
        _SEEDED_GRANTS, start=1
    ):
        granted = now - dt.timedelta(hours=ago)
        tx.execute(
            "INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"grt_{number:06d}",
                employee,
                entitlement,
                approver,
                f"needed for the {entitlement.split('_')[1]} work of their team",
                iso(granted),
                iso(granted + dt.timedelta(hours=hours)),
                iso(granted + dt.timedelta(hours=1)) if revoked else None,
                "no longer needed" if revoked else None,
            ),
        )


def _name(employee_id: str, used: set[tuple[str, str]]) -> tuple[str, str]:
    """A first and last name derived from ``employee_id``, not used by an earlier employee."""
    number = stable_number("employee", employee_id)
    first = _FIRST_NAMES[number % len(_FIRST_NAMES)]
    offset = (number >> 16) % len(_LAST_NAMES)
    for step in range(len(_LAST_NAMES)):
        last = _LAST_NAMES[(offset + step) % len(_LAST_NAMES)]
        if (first, last) not in used:
            used.add((first, last))
            return first, last
    raise AssertionError(f"no unused name is left for {employee_id}")
