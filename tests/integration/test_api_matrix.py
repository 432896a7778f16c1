"""The authorisation matrix over real HTTP: two tenants, each with runs, review items, consent
grants, flags, policies, agents, experiments, dead letters and events of its own, and every
role of each tenant calling every /v1 route, first at the other tenant's resources, then at
its own.

Nothing crosses: a route addressing another tenant's resource answers 401, 403, 404 or 422,
no answer carries the other tenant's ids or data, and the other tenant's state is the same
after each call as before. Auditors write nothing, anywhere. And on its own resources each
role is refused (403) exactly the operations its policies deny.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.errors import FailureGroup

from accord.agents import load_agent_text
from accord.api import OPERATIONS, ROLES, compile_access, role_matrix
from accord.core import TenantId
from accord.experiments import parse_experiment
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.testing import FrozenClock
from tests.governance import schema_for
from tests.integration import test_api
from tests.integration.test_api import A, B, auth, token, v1_operations

shop = test_api.shop
api = test_api.api

PURPOSE = "dpv:ServiceProvision"

OWN_ONLY = """
journey: only_{tenant}
input: {{n: integer}}
blocks:
  - {{id: done, kind: end, outcome: done}}
"""

PARKED = """
journey: parked
input: {}
blocks:
  - id: send
    kind: task
    capability: test.flaky
    input: {fail_times: 99}
    retry: {max_attempts: 1, initial_interval: 1s, jitter: 0}
  - {id: done, kind: end, outcome: done}
"""

PROBE_JOURNEY = """
journey: probe
input: {n: integer}
blocks:
  - {id: done, kind: end, outcome: done}
"""

PROMPT = "You triage complaints.\n<!-- user -->\n{{ input.message }}\n"

EXPERIMENT = """
experiment: {name}
description: {description}
target: {{kind: journey, name: apply}}
control: a
variants: [{{name: a}}, {{name: b}}]
primary: {{name: done, kind: binary, minimum_effect: 0.1, baseline: 0.5}}
"""


def agent_spec(name: str, version: int) -> str:
    return textwrap.dedent(
        f"""
        agent: {name}
        version: {version}
        purpose: {PURPOSE}
        model:
          provider: scripted
          name: script-small
          script:
            - output: {{action: none}}
              confidence: 0.3
        prompt: triage
        input:
          message: {{type: string}}
        output:
          schema:
            type: object
            properties:
              action: {{enum: [refund, none]}}
            required: [action]
        tools: []
        bands: {{auto: 0.9, confirm: 0.6}}
        """
    )


@dataclass(frozen=True)
class Estate:
    """One tenant's resources, and the strings only its data holds."""

    tenant: str
    subject: str
    run_id: str
    item_id: str
    grant_id: str
    letter_id: str
    journey: str
    agent: str
    experiment: str
    flag: str
    policy_version: int
    event_ids: tuple[str, ...]
    markers: tuple[str, ...]


def furnish(accord: Accord, clock: FrozenClock, tenant: str, tmp_path: Path) -> Estate:
    """Runs, a review item, a grant, a flag, a hold-free subject, a policy bundle, agents, an
    experiment, a dead letter and outbound events in ``tenant``, through the facade."""
    t = TenantId(tenant)
    policy_marker = f"permit-all-{tenant}"
    bundle = accord.policies.deploy(
        tenant,
        f'@id("{policy_marker}")\npermit(principal, action, resource);\n',
        schema_for(accord.capabilities),
        source_name="tests",
        actor="tests",
    )
    journey = f"only_{tenant}"
    accord.runtime.catalog.deploy(t, load_journey_text(OWN_ONLY.format(tenant=tenant)))
    accord.runtime.catalog.deploy(t, load_journey_text(PARKED))
    subject = f"cus_{tenant}"
    run_id = accord.runtime.start(t, "apply", input={"amount": 10}, subject=subject).run_id
    parked = accord.runtime.start(t, "parked", input={}).run_id
    for _ in range(4):
        accord.runtime.drive()
        clock.advance(5)
    (item,) = accord.review_items(tenant=tenant, person=None, run_id=run_id)
    (letter,) = accord.dead_letters(tenant=tenant, run_id=parked)
    notice = f"notice-{tenant}"
    grant = accord.consent.grant(
        t, subject, purpose=PURPOSE, categories=["pd:Contact"], notice_version=notice, actor="t"
    )
    flag_reason = f"flag-reason-{tenant}"
    flag = f"capability:{tenant}_lookup"
    accord.set_flag(flag, False, actor="tests", reason=flag_reason, tenant=tenant)
    agent = f"agent_{tenant}"
    (tmp_path / "prompts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "prompts" / "triage.md").write_text(PROMPT)
    for version in (1, 2):
        spec = load_agent_text(agent_spec(agent, version), source_name="a.yaml", base=tmp_path)
        accord.deploy_agent(spec, tenant=tenant)
    experiment = f"exp_{tenant}"
    experiment_marker = f"experiment-about-{tenant}"
    accord.experiments.create(
        t,
        parse_experiment(EXPERIMENT.format(name=experiment, description=experiment_marker)),
        actor="tests",
    )
    accord.experiments.assign(t, experiment, subject)
    events = tuple(e.event.event_id for e in accord.events(tenant, run_id=run_id))
    assert events, "the run emitted events"
    return Estate(
        tenant=tenant,
        subject=subject,
        run_id=run_id,
        item_id=item.item_id,
        grant_id=grant.grant_id,
        letter_id=letter.letter_id,
        journey=journey,
        agent=agent,
        experiment=experiment,
        flag=flag,
        policy_version=bundle.version,
        event_ids=events,
        markers=(
            run_id,
            parked,
            item.item_id,
            grant.grant_id,
            letter.letter_id,
            journey,
            agent,
            experiment,
            experiment_marker,
            notice,
            flag_reason,
            policy_marker,
            *events,
        ),
    )


def state(accord: Accord, estate: Estate) -> dict[str, Any]:
    """What a write to ``estate``'s tenant would change."""
    tenant, t = estate.tenant, TenantId(estate.tenant)
    item = accord.review_item(estate.item_id, tenant=tenant)
    return {
        "runs": [(v.run_id, v.status, v.updated_at) for v in accord.runtime.list_runs(t)],
        "item": (item.status, item.owner, item.outcome, item.decided_by),
        "grants": [(g.grant_id, g.withdrawn_at) for g in accord.consent.grants(t, estate.subject)],
        "flags": [(r.key, r.value, r.reason) for r in accord.flags.store.list(tenant)],
        "subject": accord.subject_status(estate.subject, tenant=tenant),
        "journeys": [(r.name, r.version) for r in accord.runtime.catalog.versions(t)],
        "policies": [v.version for v in accord.policies.versions(tenant)],
        "agents": [(v.name, v.version) for v in accord.agents.versions(t)],
        "rollouts": [r.rollout_id for r in accord.agents.rollouts(t)],
        "experiments": [
            (r["experiment"], r["version"], r["status"], json.dumps(r["decision"]))
            for r in accord.experiments.list(t)
        ],
        "letters": [
            (d.letter_id, d.status) for d in accord.dead_letters(status=None, tenant=tenant)
        ],
        "events": json.dumps([e.to_json() for e in accord.events(tenant, limit=500)]),
        "ledger": len(accord.ledger.entries(tenant, limit=10_000)),
    }


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    addressed: bool = False
    """The path names one of the target tenant's resources by its id: only 4xx may answer."""


def calls(target: Estate, schema: str) -> dict[str, Call]:
    """A valid request for every operation, aimed at ``target``'s resources."""
    run, item, grant = target.run_id, target.item_id, target.grant_id
    subject, letter = target.subject, target.letter_id
    reason = {"reason": "probe"}
    explain = {
        "principal": {"ref": 'Accord::Person::"ann"'},
        "action": "probe",
        "resource": {"ref": 'Accord::Tenant::"t"'},
        "version": target.policy_version,
    }
    return {
        "journeys.list": Call("GET", "/v1/journeys"),
        "journeys.get": Call("GET", f"/v1/journeys/{target.journey}/versions"),
        "journeys.lint": Call("POST", "/v1/journeys/lint", body={"source": PROBE_JOURNEY}),
        "journeys.deploy": Call("POST", "/v1/journeys", body={"source": PROBE_JOURNEY}),
        "journeys.attribution": Call(
            "GET",
            f"/v1/journeys/{target.journey}/attribution",
            params={"success": "done"},
            addressed=True,
        ),
        "runs.list": Call("GET", "/v1/runs", params={"subject": subject}),
        "runs.get": Call("GET", f"/v1/runs/{run}", addressed=True),
        "runs.history": Call("GET", f"/v1/runs/{run}/history", addressed=True),
        "runs.explain": Call("GET", f"/v1/runs/{run}/explanation", addressed=True),
        "runs.start": Call("POST", "/v1/runs", body={"journey": target.journey, "input": {"n": 1}}),
        "runs.signal": Call(
            "POST", f"/v1/runs/{run}/signals", body={"name": "nudge"}, addressed=True
        ),
        "runs.cancel": Call("POST", f"/v1/runs/{run}/cancel", body=reason, addressed=True),
        "reviews.list": Call("GET", "/v1/reviews", params={"run_id": run, "everyone": "true"}),
        "reviews.get": Call("GET", f"/v1/reviews/{item}", addressed=True),
        "reviews.claim": Call("POST", f"/v1/reviews/{item}/claim", addressed=True),
        "reviews.release": Call("POST", f"/v1/reviews/{item}/release", addressed=True),
        "reviews.decide": Call(
            "POST",
            f"/v1/reviews/{item}/decision",
            body={"decision": "approve", "reason": "probe"},
            addressed=True,
        ),
        "reviews.reassign": Call(
            "POST", f"/v1/reviews/{item}/reassign", body={"to": "bob", **reason}, addressed=True
        ),
        "consents.list": Call("GET", "/v1/consents", params={"subject": subject}),
        "consents.receipt": Call("GET", f"/v1/consents/{grant}/receipt", addressed=True),
        "consents.grant": Call(
            "POST",
            "/v1/consents",
            body={"subject": "probe_subject", "purpose": PURPOSE, "categories": ["pd:Contact"]},
        ),
        "consents.withdraw": Call(
            "POST", f"/v1/consents/{grant}/withdrawal", body=reason, addressed=True
        ),
        "subjects.get": Call("GET", f"/v1/subjects/{subject}"),
        "subjects.context": Call(
            "GET", f"/v1/subjects/{subject}/context", params={"purpose": PURPOSE}
        ),
        "subjects.hold": Call("POST", f"/v1/subjects/{subject}/hold", body=reason),
        "subjects.release": Call("POST", f"/v1/subjects/{subject}/hold/release", body=reason),
        "subjects.erase": Call("POST", f"/v1/subjects/{subject}/erasure", body=reason),
        "audit.entries": Call("GET", "/v1/audit/entries", params={"run_id": run}),
        "audit.head": Call("GET", "/v1/audit/head"),
        "audit.inclusion": Call("GET", "/v1/audit/proofs/inclusion/0"),
        "audit.consistency": Call(
            "GET", "/v1/audit/proofs/consistency", params={"first": 1, "second": 2}
        ),
        "audit.verify": Call("POST", "/v1/audit/verify"),
        "audit.export": Call("GET", "/v1/audit/export", params={"run_id": run}),
        "policies.list": Call("GET", "/v1/policies"),
        "policies.get": Call("GET", f"/v1/policies/{target.policy_version}"),
        "policies.explain": Call("POST", "/v1/policies/explain", body=explain),
        "policies.deploy": Call(
            "POST",
            "/v1/policies",
            body={
                "policies": '@id("probe")\npermit(principal, action, resource);\n',
                "schema": schema,
            },
        ),
        "flags.list": Call("GET", "/v1/flags"),
        "flags.set": Call("PUT", f"/v1/flags/{target.flag}", body={"value": True, **reason}),
        "agents.list": Call("GET", "/v1/agents"),
        "agents.get": Call("GET", f"/v1/agents/{target.agent}"),
        "agents.rollout": Call(
            "POST",
            "/v1/agents/rollouts",
            body={"action": "start", "agent": target.agent, "candidate": 2, "percent": 10},
        ),
        "experiments.list": Call("GET", "/v1/experiments"),
        "experiments.get": Call("GET", f"/v1/experiments/{target.experiment}", addressed=True),
        "experiments.create": Call(
            "POST",
            "/v1/experiments",
            body={"source": EXPERIMENT.format(name="probe", description="probe")},
        ),
        "experiments.ship": Call(
            "POST",
            f"/v1/experiments/{target.experiment}/ship",
            body={"variant": "b", **reason},
            addressed=True,
        ),
        "experiments.stop": Call(
            "POST", f"/v1/experiments/{target.experiment}/stop", body=reason, addressed=True
        ),
        "dlq.list": Call("GET", "/v1/dead-letters", params={"status": "pending"}),
        "dlq.retry": Call(
            "POST", f"/v1/dead-letters/{letter}/retry", body={"note": "probe"}, addressed=True
        ),
        "dlq.discard": Call(
            "POST", f"/v1/dead-letters/{letter}/discard", body={"note": "probe"}, addressed=True
        ),
        "events.list": Call("GET", "/v1/outbound-events", params={"run_id": run}),
        "events.redeliver": Call(
            "POST", "/v1/outbound-events/redelivery", body={"event_ids": list(target.event_ids)}
        ),
        "events.inbound": Call("GET", "/v1/inbound-events"),
        "access.decisions": Call("GET", "/v1/access/decisions"),
    }


def send(client: httpx.Client, call: Call, bearer: str) -> httpx.Response:
    return client.request(
        call.method, call.path, params=call.params, json=call.body, headers=auth(bearer)
    )


def template_of(path: str, routes: list[tuple[str, str, str]], method: str) -> str | None:
    """The route template (``/v1/runs/{run_id}``) that ``path`` matches for ``method``."""
    parts = path.strip("/").split("/")
    for route_method, template, _ in routes:
        pieces = template.strip("/").split("/")
        if (
            route_method == method
            and len(pieces) == len(parts)
            and all(
                p == q or (q.startswith("{") and q.endswith("}"))
                for p, q in zip(parts, pieces, strict=True)
            )
        ):
            return template
    return None


class Contract:
    """The API's own OpenAPI document, to hold each answer to."""

    def __init__(self, client: httpx.Client) -> None:
        self.document = client.get("/openapi.json").json()
        self.schema = schemathesis.openapi.from_dict(self.document)

    def breaches(self, call: Call, template: str, response: httpx.Response) -> list[str]:
        """How ``response`` departs from what the document says the route answers."""
        method = call.method.lower()
        documented = self.document["paths"][template][method]["responses"]
        answer = documented.get(str(response.status_code))
        if answer is None:
            return [f"status {response.status_code} is not documented"]
        media = response.headers.get("content-type", "").partition(";")[0]
        if media not in answer.get("content", {}):
            return [f"{media} is not documented for {response.status_code}"]
        try:
            self.schema[template][call.method].validate_response(response)
        except FailureGroup as group:
            return [str(failure) for failure in group.exceptions]
        except Failure as failure:
            return [str(failure)]
        return []


def foreign_markers(response: httpx.Response, call: Call, other: Estate) -> list[str]:
    """The other tenant's ids and data in the answer (not counting what the request sent)."""
    sent = call.path + json.dumps(call.params) + json.dumps(call.body)
    return [m for m in other.markers if m not in sent and m in response.text]


def test_no_role_of_one_tenant_reads_or_writes_another_tenants_resources(
    api: httpx.Client, shop: Accord, clock: FrozenClock, tmp_path: Path
) -> None:
    estates = {t: furnish(shop, clock, t, tmp_path / t) for t in (A, B)}
    for tenant in (A, B):
        for role in ("reviewer", "supervisor", "admin"):
            # staff of the items' queue: the item's own rule lets them, only the policies may not
            shop.put_person(f"{role}-{tenant}", roles=["supervisor"], actor="tests", tenant=tenant)
    routes = v1_operations(api)
    schema = schema_for(shop.capabilities)
    allowed = role_matrix(compile_access(None))
    writes = {name for name, op in OPERATIONS.items() if op.kind == "write"}
    for estate in estates.values():
        aimed = calls(estate, schema)
        assert set(aimed) == set(OPERATIONS), "a request for every operation"
        for name, call in aimed.items():
            template = template_of(call.path, routes, call.method)
            assert template is not None, (name, call.path)
            assert (call.method, template, name) in routes, (name, call.method, template)

    contract = Contract(api)
    templates = {
        name: template_of(c.path, routes, c.method) for name, c in calls(estates[A], schema).items()
    }
    breaches: list[tuple[Any, ...]] = []
    exercised: set[str] = set()
    statuses: Counter[tuple[str, int]] = Counter()
    leaks, crossings, refused_wrongly, auditor_writes = [], [], [], []
    for caller_tenant, other_tenant in ((A, B), (B, A)):
        other = estates[other_tenant]
        aimed = calls(other, schema)
        for role in ROLES:
            bearer = token(shop, role, tenant=caller_tenant, subject=f"{role}-{caller_tenant}")
            for name, call in aimed.items():
                before = state(shop, other)
                own_before = state(shop, estates[caller_tenant]) if role == "auditor" else None
                response = send(api, call, bearer)
                exercised.add(name)
                statuses["cross", response.status_code] += 1
                where = (caller_tenant, role, name, response.status_code)
                assert response.status_code < 500, (where, response.text)
                if found := contract.breaches(call, str(templates[name]), response):
                    breaches.append((*where, found))
                if state(shop, other) != before:
                    crossings.append(where)
                if call.addressed and response.status_code not in (401, 403, 404, 422):
                    crossings.append(where)
                if name == "access.decisions" and response.status_code == 200:
                    # the log holds the paths this tenant's callers sent, theirs included
                    strangers = {
                        d["principal"]
                        for d in response.json()["items"]
                        if not d["principal"].endswith(f"-{caller_tenant}")
                    }
                    if strangers:
                        leaks.append((*where, sorted(strangers)))
                elif found := foreign_markers(response, call, other):
                    leaks.append((*where, found))
                if (name in allowed[role]) != (response.status_code != 403):
                    refused_wrongly.append(where)
                if role == "auditor" and name in writes:
                    own_after = state(shop, estates[caller_tenant])
                    if response.status_code != 403 or own_after != own_before:
                        auditor_writes.append(where)

    for caller_tenant in (A, B):
        own = estates[caller_tenant]
        aimed = calls(own, schema)
        for role in ROLES:
            bearer = token(shop, role, tenant=caller_tenant, subject=f"{role}-{caller_tenant}")
            for name, call in aimed.items():
                before = state(shop, own) if role == "auditor" else None
                response = send(api, call, bearer)
                statuses["own", response.status_code] += 1
                where = (caller_tenant, role, name, response.status_code)
                assert response.status_code < 500, (where, response.text)
                if found := contract.breaches(call, str(templates[name]), response):
                    breaches.append((*where, found))
                if (name in allowed[role]) != (response.status_code != 403):
                    refused_wrongly.append(where)
                if response.status_code == 403:
                    problem = response.json()
                    if (problem["code"], problem.get("operation")) != ("forbidden", name):
                        refused_wrongly.append((*where, problem["code"]))
                if (
                    role == "auditor"
                    and name in writes
                    and (response.status_code != 403 or state(shop, own) != before)
                ):
                    auditor_writes.append(where)

    print(
        "\nmatrix: "
        + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(statuses.items()))
    )
    for kind, found in (
        ("leak", leaks),
        ("crossing", crossings),
        ("auditor write", auditor_writes),
        ("refused wrongly", refused_wrongly),
        ("breach of the OpenAPI document", breaches),
    ):
        for where in found:
            print(f"{kind}: {where}")
    assert exercised == set(OPERATIONS)
    assert sum(statuses.values()) == 2 * 2 * len(ROLES) * len(OPERATIONS)
    assert not leaks, leaks
    assert not crossings, crossings
    assert not auditor_writes, auditor_writes
    assert not refused_wrongly, refused_wrongly
    assert not breaches, breaches
