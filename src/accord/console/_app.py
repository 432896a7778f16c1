"""The staff console: server-rendered pages for reviewers, operators and auditors.

Signing in stores the bearer token in an HttpOnly, SameSite=Strict cookie; every page then
authenticates it like the API does and asks the same access policies, recorded the same way,
for the operation the page performs. Forms carry a token derived from the session (CSRF).
The pages decide nothing: they call the service facade with the caller's tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jwt
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from accord.api import OPERATIONS, Principal, Unauthenticated
from accord.api._http import ApiContext
from accord.api._problems import status_of
from accord.api._v1_experiments import experiment_report, experiment_summaries
from accord.console import _charts
from accord.console._attribution import attribution_section
from accord.core import TenantId
from accord.errors import AccordError, InputError
from accord.experiments import ExperimentNotFound
from accord.reviews import item_packet
from accord.storage import dashboards

COOKIE = "accord_session"
PAGE_SIZE = 50


class Denied(Exception):
    """The signed-in caller may not perform the page's operation."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(operation)
        self.operation = operation
        self.reason = reason


class SignInNeeded(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _templates() -> Environment:
    folder = Path(str(resources.files("accord.console").joinpath("templates")))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.filters["percent"] = lambda v: f"{v:.0%}"
    return env


def csrf_token(session: str) -> str:
    """The form token of a session: only someone holding the session cookie can know it."""
    return hashlib.sha256(b"accord console form\0" + session.encode()).hexdigest()[:32]


class Console:
    """The pages, bound to one API context."""

    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.accord = api.accord
        self.env = _templates()

    # -- the caller --------------------------------------------------------------------------

    def principal(self, request: Request) -> tuple[Principal, str]:
        session = request.cookies.get(COOKIE)
        if not session:
            raise SignInNeeded("sign in to continue")
        try:
            return self.api.verifier.verify(session), session
        except Unauthenticated as exc:
            raise SignInNeeded(f"your session ended: {exc.detail}") from exc

    def allow(self, request: Request, principal: Principal, operation: str) -> None:
        decision = self.api.access.decide(
            principal, OPERATIONS[operation], method=request.method, path=request.url.path
        )
        if not decision.allowed:
            raise Denied(operation, decision.reason)

    def can(self, request: Request, principal: Principal) -> set[str]:
        """The operations ``principal`` may perform, decided once per request (for links)."""
        found: set[str] | None = getattr(request.state, "can", None)
        if found is None:
            found = self.api.access.allowed(principal)
            request.state.can = found
        return found

    def render(
        self,
        request: Request,
        template: str,
        principal: Principal | None,
        session: str | None,
        *,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        allowed = self.can(request, principal) if principal else set()
        page = self.env.get_template(template).render(
            request=request,
            who=principal,
            can=allowed,
            csrf=csrf_token(session) if session else "",
            tenant=principal.tenant if principal else None,
            **values,
        )
        return HTMLResponse(page, status_code=status)

    def failure(
        self,
        request: Request,
        principal: Principal,
        session: str,
        exc: Denied | AccordError,
        *,
        status: int | None = None,
    ) -> HTMLResponse:
        """The error page for a denial (403) or an Accord error (its API status, or ``status``)."""
        if isinstance(exc, Denied):
            return self.render(
                request,
                "error.html",
                principal,
                session,
                status=403,
                title="Not allowed",
                message=f"Your roles do not allow {exc.operation} ({exc.reason}).",
            )
        return self.render(
            request,
            "error.html",
            principal,
            session,
            status=status or status_of(exc),
            title="That did not work",
            message=exc.message,
            hint=exc.hint,
            back=request.headers.get("referer") if status else None,
        )

    def check_form(self, session: str, token: str) -> None:
        if not hmac.compare_digest(csrf_token(session), token):
            raise InputError(
                "the form is stale or did not come from this console",
                hint="reload the page and submit again",
            )


def console_router(api: ApiContext) -> APIRouter:
    """``/console``: every page of the staff console."""
    console = Console(api)
    accord = console.accord
    router = APIRouter(prefix="/console", include_in_schema=False)

    def page(
        operation: str | None,
        build: Callable[[Request, Principal, str], HTMLResponse | Response],
    ) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            def work() -> Response:
                try:
                    principal, session = console.principal(request)
                except SignInNeeded as exc:
                    target = quote(request.url.path)
                    return RedirectResponse(
                        f"/console/sign-in?next={target}&why={quote(exc.detail)}", status_code=303
                    )
                try:
                    if operation is not None:
                        console.allow(request, principal, operation)
                    return build(request, principal, session)
                except (Denied, AccordError) as exc:
                    return console.failure(request, principal, session, exc)

            return await run_in_threadpool(work)

        return handler

    # -- sign-in -----------------------------------------------------------------------------

    @router.get("/sign-in")
    def sign_in_page(
        request: Request,
        token: Annotated[str | None, Query(max_length=16384)] = None,
        next: Annotated[str, Query(max_length=512)] = "/console",
        why: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Response:
        target = next if next.startswith("/console") else "/console"
        if token:
            return _signed_in(console, request, token, target)
        return console.render(request, "sign_in.html", None, None, next=target, why=why)

    @router.post("/sign-in")
    def sign_in(
        request: Request,
        token: Annotated[str, Form(max_length=16384)],
        next: Annotated[str, Form(max_length=512)] = "/console",
    ) -> Response:
        target = next if next.startswith("/console") else "/console"
        return _signed_in(console, request, token.strip(), target)

    @router.post("/sign-out")
    def sign_out() -> Response:
        response = RedirectResponse("/console/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- pages -------------------------------------------------------------------------------

    def home(request: Request, who: Principal, session: str) -> Response:
        allowed = console.can(request, who)
        if "runs.list" in allowed:
            return RedirectResponse("/console/dashboard", status_code=303)
        if "reviews.list" in allowed:
            return RedirectResponse("/console/reviews", status_code=303)
        if "audit.entries" in allowed:
            return RedirectResponse("/console/audit", status_code=303)
        if "experiments.list" in allowed:
            return RedirectResponse("/console/experiments", status_code=303)
        return console.render(
            request,
            "error.html",
            who,
            session,
            title="Nothing to show",
            message="Your roles open no page of the console.",
        )

    def dashboard(request: Request, who: Principal, session: str) -> Response:
        hours = _int(request.query_params.get("hours"), 24, 1, 24 * 90)
        now = accord.runtime.clock.now()
        with accord.db.read() as connection:
            figures = dashboards.dashboard(
                connection, who.tenant, now=now, since=now - hours * 3600, buckets=12
            )
        fmt = "%H:%M" if hours <= 48 else "%m-%d"
        labels = [datetime.fromtimestamp(b, UTC).strftime(fmt) for b in figures.buckets]
        outcomes = _charts.stacked_bars(
            f"Runs by outcome, last {hours} h", labels, figures.outcomes
        )
        escalation = _charts.bars(
            "Escalation rate per journey",
            [
                (j.journey, j.escalation_rate, f"{j.escalated} of {j.runs} runs")
                for j in figures.journeys
            ],
            maximum=1.0,
            percent=True,
        )
        feedback = accord.review_feedback(tenant=who.tenant)
        overrides = _charts.bars(
            "Override rate per recommender version",
            [
                (f.source, f.override_rate, f"{f.overridden} of {f.decided} decided")
                for f in feedback
            ],
            maximum=1.0,
            percent=True,
        )
        changed = _charts.bars(
            "Agent answers people changed, per version",
            [
                (
                    f"{a.agent}@{a.version}",
                    a.override_rate,
                    f"{a.overridden} of {a.reviewed} reviewed",
                )
                for a in figures.agents
            ],
            maximum=1.0,
            percent=True,
        )
        confidence = [
            (
                f"{a.agent}@{a.version}",
                _charts.histogram(
                    f"Confidence of {a.agent}@{a.version} ({a.answers} answers)", a.confidence
                ),
                a,
            )
            for a in figures.agents
        ]
        queues = _charts.bars(
            "Review queue depth",
            [(q.queue, float(q.open), f"{q.overdue} past their SLA") for q in figures.queues],
        )
        latency = _charts.bars("Gateway decision latency (this process)", _latency(accord))
        attribution = None
        if "journeys.attribution" in console.can(request, who):
            if request.query_params.get("attribution"):
                console.allow(request, who, "journeys.attribution")
            attribution = attribution_section(
                accord, who.tenant, request.query_params, since=now - hours * 3600
            )
        return console.render(
            request,
            "dashboard.html",
            who,
            session,
            hours=hours,
            charts=[outcomes, escalation, overrides, changed, queues, latency],
            confidence=confidence,
            queues=figures.queues,
            attribution=attribution,
        )

    def inbox(request: Request, who: Principal, session: str) -> Response:
        everyone = request.query_params.get("all") == "1"
        queue = request.query_params.get("queue") or None
        items = accord.review_items(
            tenant=who.tenant,
            person=None if everyone else who.subject,
            queue=queue,
            limit=PAGE_SIZE,
        )
        return console.render(
            request,
            "inbox.html",
            who,
            session,
            items=items,
            everyone=everyone,
            queue=queue,
            now=accord.runtime.clock.now(),
            proposals=accord.watch.proposals(who.tenant, status="open", limit=PAGE_SIZE),
        )

    def item(request: Request, who: Principal, session: str) -> Response:
        item_id = request.path_params["item_id"]
        found = accord.review_item(item_id, tenant=who.tenant)
        packet = item_packet(found)
        return console.render(
            request,
            "item.html",
            who,
            session,
            item=found,
            packet=packet,
            data=packet.to_json(),
            recommended=_pretty(packet.recommendation.value)
            if packet.recommendation.value is not None
            else "",
            done=request.query_params.get("done"),
        )

    def proposal_page(request: Request, who: Principal, session: str) -> Response:
        found = accord.watch.get(who.tenant, request.path_params["proposal_id"])
        return console.render(
            request,
            "proposal.html",
            who,
            session,
            proposal=found,
            needs=_APPLYING.get(found.candidate.kind),
            done=request.query_params.get("done"),
        )

    def runs_page(request: Request, who: Principal, session: str) -> Response:
        journey = request.query_params.get("journey") or None
        status = request.query_params.get("status") or None
        views = accord.runtime.list_runs(
            TenantId(who.tenant), journey=journey, status=status, limit=PAGE_SIZE
        )
        return console.render(
            request, "runs.html", who, session, runs=views, journey=journey, chosen=status
        )

    def run_page(request: Request, who: Principal, session: str) -> Response:
        run_id = request.path_params["run_id"]
        tenant = TenantId(who.tenant)
        view = accord.runtime.get(tenant, run_id)
        history = accord.runtime.history(tenant, run_id)
        decisions = accord.runtime.decisions(tenant, run_id)
        explanation = None
        if "runs.explain" in console.can(request, who):
            try:
                explanation = accord.explain(run_id, tenant=who.tenant).to_json()
            except AccordError:
                explanation = None
        items = accord.review_items(tenant=who.tenant, run_id=run_id, statuses=None)
        return console.render(
            request,
            "run.html",
            who,
            session,
            run=view,
            history=history,
            decisions=decisions,
            explanation=explanation,
            items=items,
        )

    def subject_page(request: Request, who: Principal, session: str) -> Response:
        subject = request.path_params["subject"]
        tenant = TenantId(who.tenant)
        grants = accord.consent.grants(tenant, subject)
        history = accord.consent.history(tenant, subject)
        status = accord.subject_status(subject, tenant=who.tenant)
        purposes = sorted(
            {b.purpose for b in accord.consent.bases(tenant)} | {g.purpose for g in grants}
        )
        purpose = request.query_params.get("purpose") or None
        context = None
        receipt = None
        if purpose:
            console.allow(request, who, "subjects.context")
            context = accord.read_context(
                subject, purpose=purpose, principal=f"staff/{who.subject}", tenant=who.tenant
            )
        receipt_id = request.query_params.get("receipt")
        if receipt_id:
            console.allow(request, who, "consents.receipt")
            receipt = accord.consent.receipt(tenant, receipt_id)
        return console.render(
            request,
            "subject.html",
            who,
            session,
            subject=subject,
            grants=grants,
            history=history,
            key=status,
            purposes=purposes,
            purpose=purpose,
            context=context,
            receipt=receipt,
        )

    def subjects_search(request: Request, who: Principal, session: str) -> Response:
        subject = (request.query_params.get("subject") or "").strip()
        if subject:
            return RedirectResponse(f"/console/subjects/{quote(subject, safe='')}", 303)
        return console.render(request, "subject_search.html", who, session)

    def audit_page(request: Request, who: Principal, session: str) -> Response:
        run_id = request.query_params.get("run") or None
        subject = request.query_params.get("subject") or None
        kind = request.query_params.get("kind") or None
        after = _int(request.query_params.get("after"), -1, -1, 2**53)
        entries = accord.ledger.entries(
            who.tenant,
            run_id=run_id,
            subject_id=subject,
            kinds=[kind] if kind else None,
            limit=PAGE_SIZE + 1,
            after=after if after >= 0 else None,
        )
        more = len(entries) > PAGE_SIZE
        entries = entries[:PAGE_SIZE]
        head = accord.tree_head(who.tenant)
        return console.render(
            request,
            "audit.html",
            who,
            session,
            entries=entries,
            head=head.to_json() if head is not None else None,
            run_id=run_id,
            subject=subject,
            kind=kind,
            next_after=entries[-1].index if more else None,
        )

    def proof(request: Request, who: Principal, session: str) -> Response:
        index = _int(request.path_params.get("index"), -1, 0, 2**53)
        head = accord.tree_head(who.tenant)
        if head is None or index < 0 or index >= head.tree_size:
            return JSONResponse({"error": "no such entry under the latest signed head"}, 404)
        found = accord.ledger.entries(who.tenant, after=index - 1, limit=1)
        entry = found[0] if found else None
        if entry is None or entry.index != index:
            return JSONResponse({"error": "no such entry"}, 404)
        proven = accord.inclusion_proof(index, tree_size=head.tree_size, tenant=who.tenant)
        return JSONResponse(
            {
                "index": index,
                "tree_size": head.tree_size,
                "root_hash": head.to_json()["root_hash"],
                "leaf": entry.data.hex(),
                "path": proven.to_json()["path"],
            }
        )

    def controls(request: Request, who: Principal, session: str) -> Response:
        flags = accord.flags.store.list(who.tenant)
        tenant = TenantId(who.tenant)
        agents = (
            accord.agents.versions(tenant) if "agents.list" in console.can(request, who) else []
        )
        rollouts = accord.agents.rollouts(tenant) if agents else []
        return console.render(
            request,
            "controls.html",
            who,
            session,
            flags=flags,
            agents=agents,
            rollouts=rollouts,
            done=request.query_params.get("done"),
        )

    def experiments_page(request: Request, who: Principal, session: str) -> Response:
        found = experiment_summaries(accord, who.tenant)
        return console.render(request, "experiments.html", who, session, experiments=found)

    def experiment_page(request: Request, who: Principal, session: str) -> Response:
        try:
            # reading the report checks the guardrails, as the CLI and the API do
            found = experiment_report(accord, who.tenant, request.path_params["name"])
        except ExperimentNotFound as exc:
            return console.failure(request, who, session, exc, status=404)
        return console.render(
            request,
            "experiment.html",
            who,
            session,
            x=found,
            done=request.query_params.get("done"),
        )

    router.add_api_route("", page(None, home), methods=["GET"])
    router.add_api_route("/dashboard", page("runs.list", dashboard), methods=["GET"])
    router.add_api_route("/reviews", page("reviews.list", inbox), methods=["GET"])
    router.add_api_route("/reviews/{item_id}", page("reviews.get", item), methods=["GET"])
    router.add_api_route(
        "/proposals/{proposal_id}", page("reviews.get", proposal_page), methods=["GET"]
    )
    router.add_api_route("/runs", page("runs.list", runs_page), methods=["GET"])
    router.add_api_route("/runs/{run_id}", page("runs.get", run_page), methods=["GET"])
    router.add_api_route("/subjects", page("subjects.get", subjects_search), methods=["GET"])
    router.add_api_route("/subjects/{subject}", page("subjects.get", subject_page), methods=["GET"])
    router.add_api_route("/audit", page("audit.entries", audit_page), methods=["GET"])
    router.add_api_route("/audit/proof/{index}", page("audit.inclusion", proof), methods=["GET"])
    router.add_api_route("/controls", page("flags.list", controls), methods=["GET"])
    router.add_api_route(
        "/experiments", page("experiments.list", experiments_page), methods=["GET"]
    )
    router.add_api_route(
        "/experiments/{name}", page("experiments.get", experiment_page), methods=["GET"]
    )

    # -- forms -------------------------------------------------------------------------------

    def form(
        operation: str, act: Callable[[Request, Principal, dict[str, str]], str]
    ) -> Callable[[Request], Any]:
        """A POST: check the session and its form token, ask the policies, act, redirect."""

        async def handler(request: Request) -> Response:
            fields = {k: str(v) for k, v in (await request.form()).items()}

            def work() -> Response:
                try:
                    principal, session = console.principal(request)
                except SignInNeeded as exc:
                    return RedirectResponse(f"/console/sign-in?why={quote(exc.detail)}", 303)
                try:
                    console.check_form(session, fields.get("csrf", ""))
                    console.allow(request, principal, operation)
                    return RedirectResponse(act(request, principal, fields), status_code=303)
                except (Denied, AccordError) as exc:
                    # a form that failed answers 422 (403 when denied), with the way back
                    return console.failure(request, principal, session, exc, status=422)

            return await run_in_threadpool(work)

        return handler

    def do_claim(request: Request, who: Principal, fields: dict[str, str]) -> str:
        item_id = request.path_params["item_id"]
        accord.claim_review(item_id, who.subject, tenant=who.tenant)
        return f"/console/reviews/{quote(item_id)}?done=claimed"

    def do_decide(request: Request, who: Principal, fields: dict[str, str]) -> str:
        item_id = request.path_params["item_id"]
        decision = fields.get("decision", "")
        details: dict[str, Any] = {"reason": fields.get("reason") or None}
        if decision == "edit":
            text = fields.get("value", "")
            try:
                details["value"] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"the edited value is not JSON: {exc.msg} at line {exc.lineno}, "
                    f"column {exc.colno}",
                    hint="edit the recommended value in place, keeping it valid JSON",
                ) from exc
        if decision == "override":
            details["outcome"] = fields.get("outcome") or None
        if decision == "request_info":
            details["question"] = fields.get("reason") or None
        accord.decide_review(
            item_id,
            who.subject,
            decision,
            tenant=who.tenant,
            **{k: v for k, v in details.items() if v is not None},
        )
        return f"/console/reviews/{quote(item_id)}?done={quote(decision)}"

    def do_flag(request: Request, who: Principal, fields: dict[str, str]) -> str:
        key = fields.get("key", "")
        raw = fields.get("value", "")
        value: bool | int = raw == "on" if raw in ("on", "off") else _int(raw, 0, 0, 100)
        accord.set_flag(
            key,
            value,
            actor=who.subject,
            reason=fields.get("reason") or "console",
            tenant=who.tenant,
        )
        return "/console/controls?done=" + quote(key)

    def do_rollout(request: Request, who: Principal, fields: dict[str, str]) -> str:
        action = fields.get("action")
        rollout_id = fields.get("rollout_id", "")
        if action == "advance":
            accord.advance_rollout(rollout_id, by=who.subject, tenant=who.tenant)
        elif action == "promote":
            accord.promote_rollout(rollout_id, by=who.subject, tenant=who.tenant)
        elif action == "stop":
            accord.stop_rollout(
                rollout_id,
                reason=fields.get("reason") or "stopped in console",
                by=who.subject,
                tenant=who.tenant,
            )
        else:
            raise InputError(f"unknown rollout action {action!r}", hint="advance, promote or stop")
        return "/console/controls?done=" + quote(rollout_id)

    def do_ship(request: Request, who: Principal, fields: dict[str, str]) -> str:
        name = request.path_params["name"]
        variant = fields.get("variant", "")
        accord.experiments.ship(
            TenantId(who.tenant), name, variant, actor=who.subject, reason=fields.get("reason", "")
        )
        return f"/console/experiments/{quote(name)}?done=" + quote(f"shipped {variant}")

    def do_stop(request: Request, who: Principal, fields: dict[str, str]) -> str:
        name = request.path_params["name"]
        accord.experiments.stop(
            TenantId(who.tenant), name, actor=who.subject, reason=fields.get("reason", "")
        )
        return f"/console/experiments/{quote(name)}?done=stopped"

    def do_proposal(request: Request, who: Principal, fields: dict[str, str]) -> str:
        proposal_id = request.path_params["proposal_id"]
        decision = fields.get("decision", "")
        reason = fields.get("reason", "")
        if decision == "accept":
            # accepting applies the change as this person: they need its own permission too
            needs = _APPLYING.get(accord.watch.get(who.tenant, proposal_id).candidate.kind)
            if needs is not None:
                console.allow(request, who, needs)
            accord.watch.accept(who.tenant, proposal_id, by=who.subject, reason=reason)
        elif decision == "reject":
            accord.watch.reject(who.tenant, proposal_id, by=who.subject, reason=reason)
        else:
            raise InputError(f"unknown decision {decision!r}", hint="accept or reject")
        return f"/console/proposals/{quote(proposal_id)}?done={quote(decision + 'ed')}"

    router.add_api_route(
        "/proposals/{proposal_id}/decision",
        form("reviews.decide", do_proposal),
        methods=["POST"],
    )
    router.add_api_route(
        "/reviews/{item_id}/claim", form("reviews.claim", do_claim), methods=["POST"]
    )
    router.add_api_route(
        "/reviews/{item_id}/decision", form("reviews.decide", do_decide), methods=["POST"]
    )
    router.add_api_route("/flags", form("flags.set", do_flag), methods=["POST"])
    router.add_api_route("/rollouts", form("agents.rollout", do_rollout), methods=["POST"])
    router.add_api_route(
        "/experiments/{name}/ship", form("experiments.ship", do_ship), methods=["POST"]
    )
    router.add_api_route(
        "/experiments/{name}/stop", form("experiments.stop", do_stop), methods=["POST"]
    )
    return router


_APPLYING = {
    "rollback_rollout": "agents.rollout",
    "restore_agent_version": "agents.rollout",
    "kill_switch": "flags.set",
}
"""The operation that accepting a watch proposal of each kind performs besides deciding it."""


def _signed_in(console: Console, request: Request, token: str, target: str) -> Response:
    try:
        principal = console.api.verifier.verify(token)
    except Unauthenticated as exc:
        return console.render(
            request, "sign_in.html", None, None, status=401, next=target, why=exc.detail
        )
    del principal
    response = RedirectResponse(target, status_code=303)
    claims_exp = _expiry(token)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
        max_age=max(60, int(claims_exp - time.time())) if claims_exp else 8 * 3600,
    )
    return response


def _expiry(token: str) -> float | None:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def _int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return min(max(value, lo), hi)


def _latency(accord: Any) -> list[tuple[str, float, str]]:
    """Gateway decisions of this process per latency bucket, from its histogram."""
    buckets: dict[float, float] = {}
    for metric in accord.telemetry.metrics.gateway_decision_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    found = []
    previous = 0.0
    for bound in sorted(buckets):
        count = buckets[bound] - previous
        previous = buckets[bound]
        label = "slower" if bound == float("inf") else f"≤ {bound * 1000:g} ms"
        found.append((label, count, "decisions"))
    return [row for row in found if row[1] or row[0] != "slower"]


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(resources.files("accord.console").joinpath("static")))
