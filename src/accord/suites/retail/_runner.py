"""Drive tau-bench retail tasks through Accord's gateway and check what the shop holds after.

For each task the orders service is put back to its seeded state (an admin reset, a few
milliseconds), then:

1. the task's *before* variants run, each a run of the ``retail_order_request`` journey that the
   policy must refuse with its rule, and the service's effect log must stay empty;
2. the task's actions run one after another, each a run of the same journey that the policy must
   permit; then the orders they touch and their users' balances are compared with the oracle;
3. the *after* variants run, and the effect log must not grow.

Every call passes the kill switches, the lawful basis, the Cedar policy and then the HTTP
connector to the sandbox orders service; refusals are read from the decision records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from accord.connectors import CapabilityRegistry, Endpoints, load_catalogue
from accord.consent import validate_categories
from accord.core import TenantId
from accord.journeys import load_journey_file
from accord.sandbox import SandboxEnterprise
from accord.sandbox._seed import read_retail_data
from accord.service import Accord, Settings, build
from accord.suites.retail._assess import register as register_assess
from accord.suites.retail._oracle import (
    ORDER_FIELDS,
    ExpectedState,
    balances,
    expected_state,
    order_view,
)
from accord.suites.retail._tasks import Action, Task
from accord.suites.retail._variants import GROUND_TRUTH, Variant, another_user, variants

TENANT = TenantId("default")
JOURNEY = "retail_order_request"
PURPOSE = "dpv:CustomerOrderManagement"
CATEGORIES = ("pd:Name", "pd:EmailAddress", "pd:PhysicalAddress", "pd:PaymentCard", "pd:Purchase")


@dataclass(frozen=True, slots=True)
class ActionResult:
    """A compliant action: whether the gateway let it through and the service made it."""

    task: str
    action: str
    permitted: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StateResult:
    """The final-state check of one task; ``mismatches`` name the order or user and field."""

    task: str
    actions: tuple[str, ...]
    mismatches: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class VariantResult:
    """A violating variant: whether the policy refused it with the expected rule."""

    task: str
    kind: str
    action: str
    policy: str
    refused: bool
    detail: str = ""


@dataclass
class SuiteReport:
    """Everything one run of the suite found."""

    tasks: int = 0
    actions: list[ActionResult] = field(default_factory=list)
    states: list[StateResult] = field(default_factory=list)
    variants: list[VariantResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            all(a.permitted for a in self.actions)
            and all(s.matched for s in self.states)
            and all(v.refused for v in self.variants)
        )

    def misses(self) -> list[str]:
        """One line per miss, naming the task."""
        found = [f"{a.task}: {a.action} was not permitted: {a.detail}" for a in self.actions]
        found = [line for line, a in zip(found, self.actions, strict=True) if not a.permitted]
        for state in self.states:
            found.extend(f"{state.task}: {mismatch}" for mismatch in state.mismatches)
        found.extend(
            f"{v.task}: variant {v.kind} ({v.action}) not refused by {v.policy}: {v.detail}"
            for v in self.variants
            if not v.refused
        )
        return found

    def to_json(self) -> dict[str, Any]:
        by_action: dict[str, dict[str, int]] = {}
        for a in self.actions:
            counts = by_action.setdefault(a.action, {"permitted": 0, "total": 0})
            counts["total"] += 1
            counts["permitted"] += a.permitted
        by_kind: dict[str, dict[str, Any]] = {}
        for v in self.variants:
            counts = by_kind.setdefault(v.kind, {"policy": v.policy, "refused": 0, "total": 0})
            counts["total"] += 1
            counts["refused"] += v.refused
        return {
            "suite": "retail",
            "ok": self.ok,
            "tasks": self.tasks,
            "compliant": {
                "permitted": sum(a.permitted for a in self.actions),
                "total": len(self.actions),
                "by_action": dict(sorted(by_action.items())),
            },
            "final_state": {
                "matched": sum(s.matched for s in self.states),
                "total": len(self.states),
            },
            "violations": {
                "refused": sum(v.refused for v in self.variants),
                "total": len(self.variants),
                "by_kind": dict(sorted(by_kind.items())),
            },
            "misses": self.misses(),
            "seconds": round(self.seconds, 2),
        }


class RetailSuite:
    """The orders service seeded from ``data``, and an Accord instance governing it.

    Use it as a context manager; :meth:`run` drives tasks and returns the report.

    Args:
        data: the tau-bench retail data directory (``users.json``, ``orders.json``,
            ``products.json``), read where it is.
        suite: the suite's files: ``capabilities.yaml``, ``journeys/`` and ``policies/``.
        workdir: where the databases go.
    """

    def __init__(self, *, data: Path, suite: Path, workdir: Path) -> None:
        self.data_dir = data
        self.suite = suite
        self.workdir = workdir
        self.data: Mapping[str, Any] = read_retail_data(data)
        self._enterprise = SandboxEnterprise(
            workdir / "sandbox", services=["orders"], retail_data=data
        )
        self._accord: Accord | None = None
        self._http: httpx.Client | None = None

    def __enter__(self) -> RetailSuite:
        self._enterprise.start()
        try:
            self._accord = self._build()
            self._http = httpx.Client(base_url=self._enterprise.url("orders"), timeout=30.0)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._accord is not None:
            self._accord.close()
        self._enterprise.stop()

    @property
    def accord(self) -> Accord:
        assert self._accord is not None, "use the suite as a context manager"
        return self._accord

    @property
    def http(self) -> httpx.Client:
        assert self._http is not None, "use the suite as a context manager"
        return self._http

    def _build(self) -> Accord:
        registry = CapabilityRegistry()
        load_catalogue(
            self.suite / "capabilities.yaml",
            registry,
            check_categories=validate_categories,
            connector_urls={"orders": self._enterprise.url("orders")},
            endpoints=Endpoints(),
        )
        register_assess(registry)
        settings = Settings(
            database_url=f"sqlite:///{self.workdir / 'accord.sqlite3'}",
            keys_dir=self.workdir / "keys",
            sqlite_synchronous="OFF",
        )
        accord = build(settings, capabilities=registry)
        try:
            policies = self.suite / "policies"
            accord.policies.deploy(
                TENANT,
                (policies / "retail-suite.cedar").read_text(encoding="utf-8"),
                (policies / "retail-suite.cedarschema").read_text(encoding="utf-8"),
                source_name="examples/retail-suite/policies/retail-suite.cedar",
                actor="suite",
            )
            accord.consent.set_basis(
                TENANT,
                PURPOSE,
                "contract",
                categories=list(CATEGORIES),
                description="changing a customer's order at their request is part of the sale",
                actor="suite",
            )
            accord.runtime.catalog.deploy(
                TENANT,
                load_journey_file(self.suite / "journeys" / f"{JOURNEY}.yaml"),
                deployed_by="suite",
            )
        except BaseException:
            accord.close()
            raise
        return accord

    def run(
        self, tasks: Iterable[Task], *, progress: Callable[[Task], None] | None = None
    ) -> SuiteReport:
        """Drive every task and return what was found."""
        report = SuiteReport()
        started = time.perf_counter()
        for task in tasks:
            self.run_task(task, report)
            if progress is not None:
                progress(task)
        report.seconds = time.perf_counter() - started
        return report

    def run_task(self, task: Task, report: SuiteReport) -> None:
        """Drive one task from a fresh copy of the data, adding its results to ``report``."""
        report.tasks += 1
        self.http.post("/_sandbox/reset").raise_for_status()
        if task.user_id not in self.data["users"]:
            report.actions.extend(
                ActionResult(task.label, a.name, False, f"user {task.user_id} is not in the data")
                for a in task.actions
            )
            return
        try:
            expected = expected_state(self.data, task)
        except (KeyError, ValueError, StopIteration) as exc:
            report.states.append(
                StateResult(
                    task.label,
                    tuple(a.name for a in task.actions),
                    (f"the oracle cannot apply the task's actions to the data: {exc!r}",),
                )
            )
            return
        generated = variants(self.data, task, expected)
        self._refuse(task, [v for v in generated if v.phase == "before"], report)
        writes = self._effects()
        if writes:
            report.states.append(
                StateResult(task.label, (), (f"refused variants wrote {writes} effect(s)",))
            )
        for action, rule in zip(task.actions, expected.broken, strict=True):
            if rule is None:
                report.actions.append(self._permit(task, action))
            else:
                # the task's own action breaks a rule in the state it meets: it must be
                # refused by that rule, and change nothing
                self._refuse(task, [Variant(GROUND_TRUTH, "before", action, rule=rule)], report)
        report.states.append(
            StateResult(task.label, tuple(a.name for a in task.actions), self._compare(expected))
        )
        before_after = self._effects()
        self._refuse(task, [v for v in generated if v.phase == "after"], report)
        if self._effects() != before_after:
            report.states.append(
                StateResult(task.label, (), ("refused after-variants wrote effects",))
            )

    def _permit(self, task: Task, action: Action) -> ActionResult:
        run_id = self._start(task, action, "own")
        self.accord.runtime.drive()
        outcome, decision = self._outcome(run_id, action)
        if outcome == "done" and decision is not None and decision.outcome == "executed":
            return ActionResult(task.label, action.name, True)
        detail = f"run {run_id} ended {outcome}"
        if decision is not None:
            policy = decision.record.get("policy") or {}
            detail += (
                f"; decision {decision.outcome} ({decision.reason}), "
                f"policies {', '.join(policy.get('determining') or []) or '-'}"
            )
            error = decision.record.get("error")
            if error:
                detail += f"; {error.get('message')}"
        return ActionResult(task.label, action.name, False, detail)

    def _refuse(self, task: Task, planned: list[Variant], report: SuiteReport) -> None:
        started = [
            (variant, self._start(task, variant.action, variant.credentials)) for variant in planned
        ]
        self.accord.runtime.drive()
        for variant, run_id in started:
            outcome, decision = self._outcome(run_id, variant.action)
            determining: list[str] = []
            reason = None
            if decision is not None:
                determining = list((decision.record.get("policy") or {}).get("determining") or [])
                reason = decision.reason
            refused = (
                outcome == "refused"
                and decision is not None
                and decision.outcome == "refused"
                and reason == "policy_denied"
                and variant.policy in determining
            )
            detail = (
                ""
                if refused
                else (
                    f"run {run_id} ended {outcome}; decision "
                    f"{decision.outcome if decision else 'none'} ({reason}), policies "
                    f"{', '.join(determining) or '-'}"
                )
            )
            report.variants.append(
                VariantResult(
                    task.label, variant.kind, variant.action.name, variant.policy, refused, detail
                )
            )

    def _start(self, task: Task, action: Action, credentials: str) -> str:
        user_id = task.user_id
        if credentials == "other":
            user_id = another_user(self.data, task.user_id)
        user = self.data["users"][user_id]
        given: dict[str, Any]
        if task.index % 2 == 0:
            given = {"email": user["email"]}
        else:
            given = {
                "first_name": user["name"]["first_name"],
                "last_name": user["name"]["last_name"],
                "zip": user["address"]["zip"],
            }
        if credentials == "wrong":
            given = {
                "first_name": user["name"]["first_name"],
                "last_name": user["name"]["last_name"],
                "zip": "00000",
            }
        kwargs = action.kwargs
        address = {
            key: kwargs[key]
            for key in ("address1", "address2", "city", "state", "country", "zip")
            if key in kwargs
        }
        request: dict[str, Any] = {
            "action": action.name,
            "order_id": kwargs["order_id"],
            **given,
            **{
                key: kwargs[key]
                for key in ("reason", "item_ids", "new_item_ids", "payment_method_id")
                if key in kwargs
            },
        }
        if address:
            request["address"] = address
        return self.accord.runtime.start(
            TENANT, JOURNEY, input=request, subject=task.user_id
        ).run_id

    def _outcome(self, run_id: str, action: Action) -> tuple[str, Any]:
        runtime = self.accord.runtime
        view = runtime.get(TENANT, run_id)
        capability = f"orders.{action.name}"
        decision = next(
            (d for d in reversed(runtime.decisions(TENANT, run_id)) if d.capability == capability),
            None,
        )
        outcome = view.outcome if view.status == "completed" else f"{view.status}: {view.error}"
        return str(outcome), decision

    def _effects(self) -> int:
        response = self.http.get("/_sandbox/effects")
        response.raise_for_status()
        return len(response.json())

    def _compare(self, expected: ExpectedState) -> tuple[str, ...]:
        mismatches: list[str] = []
        for order_id, fields in expected.orders.items():
            response = self.http.get(f"/orders/{order_id.lstrip('#')}")
            if response.status_code != 200:
                mismatches.append(f"order {order_id}: the service answered {response.status_code}")
                continue
            held = order_view(response.json())
            for name in ORDER_FIELDS:
                if held.get(name) != fields.get(name):
                    mismatches.append(
                        f"order {order_id}: field {name} is {held.get(name)!r}, "
                        f"expected {fields.get(name)!r}"
                    )
        for user_id, wanted in expected.balances.items():
            response = self.http.get(f"/users/{user_id}")
            if response.status_code != 200:
                mismatches.append(f"user {user_id}: the service answered {response.status_code}")
                continue
            held_balances = balances(response.json()["payment_methods"])
            for method_id, balance in wanted.items():
                if held_balances.get(method_id) != balance:
                    mismatches.append(
                        f"user {user_id}: payment method {method_id} balance is "
                        f"{held_balances.get(method_id)!r}, expected {balance!r}"
                    )
        return tuple(mismatches)
