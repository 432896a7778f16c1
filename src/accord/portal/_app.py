"""The customer portal: server-rendered pages where a customer signs in with a one-time code or
link, sees and changes their consents, and follows their cases.

A session names a tenant and the customer's subject id only. Every page reads and acts on that
subject alone: an id in the address that belongs to someone else answers the same 404 as an id
that does not exist. Forms carry a token derived from the session (CSRF). The pages decide
nothing: they call the service facade, which governs and records.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from accord.consent import Grant
from accord.core import TenantId
from accord.errors import AccordError, RunNotFound
from accord.portal._catalogue import BASIS_WORDS, Catalogue, find_catalogue_folder, load_catalogue
from accord.portal._chat import add_chat_routes
from accord.portal._sign_in import (
    EMAIL,
    SESSION_SECONDS,
    Session,
    SessionSigner,
    SignInRefused,
    SignIns,
)
from accord.service import Accord
from accord.storage import TERMINAL
from accord.storage import _reviews as reviews

COOKIE = "accord_portal"
PREFIX = "/portal"
CHANNEL = "portal"
WAITERS = 4  # requests that may wait for a chat reply at once, each holding a worker thread
CHAT_BACK = re.compile(r"/portal/chat/[A-Za-z0-9_-]{1,64}")
SENT = (
    "If that address belongs to a customer, we have sent it a sign-in code and a link. "
    "They work once, for 10 minutes."
)


class NotFound(Exception):
    """Nothing of the signed-in customer's at this address (whether or not it exists)."""


class FormRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%d %b %Y, %H:%M UTC")


def _templates() -> Environment:
    folder = Path(str(resources.files("accord.portal").joinpath("templates")))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


@dataclass(frozen=True, slots=True)
class CaseLine:
    run_id: str
    title: str
    status: str
    started: float
    ended: float | None


class Portal:
    """The pages, bound to one Accord instance and its catalogue."""

    def __init__(self, accord: Accord, catalogue: Catalogue, *, reply_wait: float = 5.0) -> None:
        self.accord = accord
        self.reply_wait = reply_wait
        self._waiters = threading.BoundedSemaphore(WAITERS)
        self.catalogue = catalogue
        self.signer = SessionSigner(accord.ledger.keyring.master)
        self.sign_ins = SignIns(accord)
        self.env = _templates()
        self.tenant = TenantId(accord.settings.tenant)

    def now(self) -> float:
        return self.accord.runtime.clock.now()

    def session(self, request: Request) -> tuple[Session, str] | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        found = self.signer.verify(cookie, now=self.now())
        return (found, cookie) if found is not None else None

    def render(
        self,
        template: str,
        session: Session | None,
        cookie: str | None,
        *,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        page = self.env.get_template(template).render(
            who=session,
            csrf=self.signer.form_token(cookie) if cookie else "",
            **values,
        )
        return HTMLResponse(page, status_code=status)

    def not_found(self, session: Session | None, cookie: str | None) -> HTMLResponse:
        return self.render(
            "error.html",
            session,
            cookie,
            status=404,
            title="Not found",
            message="There is nothing of yours at this address.",
        )

    # -- consents ---------------------------------------------------------------------------

    def consent_rows(self, subject: str) -> list[dict[str, Any]]:
        bases = {b.purpose: b for b in self.accord.consent.bases(self.tenant)}
        grants = self.accord.consent.grants(self.tenant, subject)
        now = self.now()
        rows = []
        for purpose in self.catalogue.purposes.values():
            configured = bases.get(purpose.purpose)
            needs_consent = configured is None or configured.basis == "consent"
            active = [g for g in grants if g.purpose == purpose.purpose and _active(g, now)]
            rows.append(
                {
                    "purpose": purpose,
                    "needs_consent": needs_consent,
                    "active": active[-1] if active else None,
                    "basis": purpose.basis_words
                    if configured is None
                    else _basis_words(configured.basis),
                }
            )
        return rows

    def own_grant(self, subject: str, grant_id: str) -> Grant:
        for grant in self.accord.consent.grants(self.tenant, subject):
            if grant.grant_id == grant_id:
                return grant
        raise NotFound(grant_id)

    def consent_purpose(self, purpose_id: str) -> tuple[str, list[str], str]:
        purpose = self.catalogue.purposes.get(purpose_id)
        if purpose is None:
            raise FormRefused("That is not a purpose you can give or withdraw consent for.")
        bases = {b.purpose: b for b in self.accord.consent.bases(self.tenant)}
        configured = bases.get(purpose.purpose)
        if configured is not None and configured.basis != "consent":
            raise FormRefused(
                f"{purpose.title} does not rest on your consent but on "
                f"{_basis_words(configured.basis)}, so there is nothing to give or withdraw."
            )
        return purpose.purpose, purpose.categories, purpose.notice_version

    # -- cases ------------------------------------------------------------------------------

    def case_line(self, view: Any) -> CaseLine:
        waiting = tuple(p.waiting_for for p in view.positions if p.waiting_for)
        return CaseLine(
            view.run_id,
            self.catalogue.case_title(view.journey),
            self.catalogue.case_status(view.journey, view.status, view.outcome, waiting),
            view.created_at,
            view.ended_at,
        )

    def own_run(self, subject: str, run_id: str) -> Any:
        try:
            view = self.accord.runtime.get(self.tenant, run_id)
        except RunNotFound as exc:
            raise NotFound(run_id) from exc
        if view.subject_id != subject:
            raise NotFound(run_id)
        return view

    def confirmations(self, subject: str) -> list[dict[str, Any]]:
        """The proposals waiting for the customer's answer, newest first: what confirming would
        do, until when, and where it may be answered; only the customer's own runs."""
        now = self.now()
        found = []
        for view in self.accord.runtime.list_runs(self.tenant, subject=subject, limit=100):
            if view.subject_id != subject or view.status in TERMINAL:
                continue
            waiting = {
                p.block for p in view.positions if (p.waiting_for or "").startswith("confirm")
            }
            if not waiting:
                continue
            events = self.accord.events(
                self.tenant,
                types=["confirmation.requested"],
                run_id=view.run_id,
                newest=True,
                limit=20,
            )
            seen: set[str] = set()
            for event in events:
                data = event.cloudevent.get("data") or {}
                block = str(data.get("block") or "")
                expires = data.get("expires_at")
                if block not in waiting or block in seen:
                    continue
                seen.add(block)
                if isinstance(expires, int | float) and expires <= now:
                    continue
                if not self._still_pending(str(data.get("confirmation") or "")):
                    continue  # answered on some channel; the run has not moved on yet
                found.append(
                    {
                        "run_id": view.run_id,
                        "block": block,
                        "title": self.catalogue.case_title(view.journey),
                        "proposal": data.get("proposal") or {},
                        "expires_at": expires,
                        "portal": "portal" in (data.get("channels") or []),
                        "token": str(data.get("token") or ""),
                    }
                )
        return found

    def wait_for_reply(self, subject: str, conversation_id: str) -> None:
        """Wait up to ``reply_wait`` seconds (wall time) while the conversation's run is busy;
        at most a few requests wait at once, the others answer straight away."""
        if not self._waiters.acquire(blocking=False):
            return
        try:
            self._wait_for_reply(subject, conversation_id)
        finally:
            self._waiters.release()

    def _wait_for_reply(self, subject: str, conversation_id: str) -> None:
        deadline = time.monotonic() + self.reply_wait
        while time.monotonic() < deadline:
            try:
                found = self.accord.conversations.get(self.tenant, subject, conversation_id)
                if found.run_id is None:
                    return
                status = self.accord.runtime.get(self.tenant, found.run_id).status
            except (AccordError, LookupError):
                return
            if status not in ("ready", "running"):
                return
            time.sleep(0.05)

    def _still_pending(self, confirmation_id: str) -> bool:
        with self.accord.db.read() as connection:
            stored = reviews.get_confirmation(connection, self.tenant, confirmation_id)
        return stored is not None and stored["status"] == "pending"

    def people_decided(self, run_id: str, subject: str) -> list[dict[str, Any]]:
        """What people decided in the case: our staff's review decisions and the customer's
        own answers to proposals, from the ledger (the decision only, never a reviewer's
        reason or notes)."""
        found = []
        entries = self.accord.ledger.entries(
            self.tenant, run_id=run_id, kinds=["human.decision", "confirmation.answered"]
        )
        for entry in entries:
            if entry.subject_id not in (None, subject):
                continue
            body = entry.body
            if entry.kind == "human.decision":
                text = self.catalogue.review_text(str(body.get("decision") or ""))
            else:
                text = self.catalogue.answer_text(
                    str(body.get("answer") or ""), body.get("channel")
                )
            found.append({"at": entry.at, "text": text})
        return found

    def own_confirmation(self, subject: str, run_id: str, block: str) -> dict[str, Any]:
        for pending in self.confirmations(subject):
            if pending["run_id"] == run_id and pending["block"] == block:
                return pending
        raise NotFound(f"{run_id}/{block}")

    def explained(self, run_id: str, subject: str) -> list[dict[str, Any]]:
        """The decisions about the customer, in their words: no policy ids, no model output."""
        found = self.people_decided(run_id, subject)
        for decision in self.accord.runtime.decisions(self.tenant, run_id):
            if decision.subject_id not in (None, subject):
                continue
            known = decision.capability in self.catalogue.actions
            if not known and decision.outcome == "executed":
                continue
            found.append(
                {
                    "at": decision.at,
                    "text": self.catalogue.decision_text(
                        decision.capability, decision.outcome, decision.reason
                    ),
                }
            )
        return sorted(found, key=lambda line: float(line["at"]))


def _active(grant: Grant, now: float) -> bool:
    return (
        grant.withdrawn_at is None
        and grant.granted_at <= now
        and (grant.expires_at is None or grant.expires_at > now)
    )


def _basis_words(basis: str) -> str:
    return BASIS_WORDS.get(basis, basis.replace("_", " "))


Page = Callable[[Request, Session, str], Response]
Act = Callable[[Request, Session, dict[str, str]], str]


def portal_router(
    accord: Accord, *, catalogue: Path | None = None, reply_wait: float = 5.0
) -> APIRouter:
    """``/portal``: every page of the customer portal.

    Args:
        catalogue: the folder holding ``purposes.yaml`` and ``portal.yaml``; by default the
            sample enterprise's ``examples/enterprise`` when there is one.
        reply_wait: how long (wall seconds) a chat form waits for the run's reply before
            showing the conversation.
    """
    portal = Portal(
        accord, load_catalogue(catalogue or find_catalogue_folder()), reply_wait=reply_wait
    )
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def page(build: Page) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            def work() -> Response:
                signed = portal.session(request)
                if signed is None:
                    return _to_sign_in(request, "Sign in to continue.")
                session, cookie = signed
                try:
                    return build(request, session, cookie)
                except NotFound:
                    return portal.not_found(session, cookie)

            return await run_in_threadpool(work)

        return handler

    def form(act: Act) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            fields = {k: str(v) for k, v in (await request.form()).items()}

            def work() -> Response:
                signed = portal.session(request)
                if signed is None:
                    return _to_sign_in(request, "Sign in to continue.")
                session, cookie = signed
                try:
                    if not _same(portal.signer.form_token(cookie), fields.get("csrf", "")):
                        return portal.render(
                            "error.html",
                            session,
                            cookie,
                            status=403,
                            title="That form has expired",
                            message="Reload the page and try again: nothing was changed.",
                        )
                    return RedirectResponse(act(request, session, fields), status_code=303)
                except NotFound:
                    return portal.not_found(session, cookie)
                except (FormRefused, AccordError) as exc:
                    return portal.render(
                        "error.html",
                        session,
                        cookie,
                        status=422,
                        title="That did not work",
                        message=exc.message,
                        back=_back(request.url.path, fields.get("back", "")),
                    )

            return await run_in_threadpool(work)

        return handler

    # -- signing in -------------------------------------------------------------------------

    @router.get("/sign-in")
    def sign_in_page(
        why: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        return portal.render("sign_in.html", None, None, why=why)

    @router.post("/sign-in")
    async def sign_in(
        request: Request, email: Annotated[str, Form(max_length=320)] = ""
    ) -> Response:
        address = email.strip()
        if not EMAIL.match(address) or len(address) > 254:
            return portal.render(
                "sign_in.html",
                None,
                None,
                status=422,
                why="That does not look like an e-mail address, e.g. name@example.com.",
                email=address,
            )
        link_base = str(request.base_url).rstrip("/") + f"{PREFIX}/link"
        challenge = await run_in_threadpool(
            portal.sign_ins.request, portal.tenant, address, link_base=link_base
        )
        return portal.render("verify.html", None, None, challenge=challenge.challenge_id, sent=SENT)

    @router.post("/verify")
    async def verify(
        request: Request,
        challenge: Annotated[str, Form(max_length=64)] = "",
        code: Annotated[str, Form(max_length=32)] = "",
    ) -> Response:
        try:
            subject = await run_in_threadpool(
                portal.sign_ins.verify_code, portal.tenant, challenge, code.strip()
            )
        except SignInRefused as exc:
            return portal.render(
                "verify.html",
                None,
                None,
                status=401,
                challenge=challenge,
                why=exc.message,
                again=exc.why != "wrong",
            )
        return _signed_in(portal, request, subject)

    @router.get("/link")
    async def link(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
        try:
            subject = await run_in_threadpool(portal.sign_ins.verify_link, portal.tenant, token)
        except SignInRefused as exc:
            return portal.render("sign_in.html", None, None, status=401, why=exc.message)
        return _signed_in(portal, request, subject)

    @router.post("/sign-out")
    def sign_out() -> Response:
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # -- pages ------------------------------------------------------------------------------

    def home(request: Request, session: Session, cookie: str) -> Response:
        return RedirectResponse(f"{PREFIX}/cases", status_code=303)

    def consents(request: Request, session: Session, cookie: str) -> Response:
        history = [
            event
            for event in accord.consent.history(portal.tenant, session.subject)
            if event.kind in ("granted", "withdrawn")
        ]
        grants = {g.grant_id: g for g in accord.consent.grants(portal.tenant, session.subject)}
        titles = {p.purpose: p.title for p in portal.catalogue.purposes.values()}
        return portal.render(
            "consents.html",
            session,
            cookie,
            rows=portal.consent_rows(session.subject),
            history=list(reversed(history)),
            grants=grants,
            titles=titles,
            done=request.query_params.get("done"),
        )

    def receipt(request: Request, session: Session, cookie: str) -> Response:
        grant = portal.own_grant(session.subject, request.path_params["grant_id"])
        document = accord.consent.receipt(portal.tenant, grant.grant_id)
        return Response(
            json.dumps(document, indent=2, sort_keys=True),
            media_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="consent-{grant.grant_id}.json"'
            },
        )

    def cases(request: Request, session: Session, cookie: str) -> Response:
        views = accord.runtime.list_runs(portal.tenant, subject=session.subject, limit=100)
        lines = [portal.case_line(v) for v in views if v.subject_id == session.subject]
        return portal.render("cases.html", session, cookie, cases=lines)

    def case(request: Request, session: Session, cookie: str) -> Response:
        view = portal.own_run(session.subject, request.path_params["run_id"])
        return portal.render(
            "case.html",
            session,
            cookie,
            case=portal.case_line(view),
            decisions=portal.explained(view.run_id, session.subject),
        )

    router.add_api_route("", page(home), methods=["GET"])
    router.add_api_route("/consents", page(consents), methods=["GET"])
    router.add_api_route("/consents/receipts/{grant_id}", page(receipt), methods=["GET"])
    router.add_api_route("/cases", page(cases), methods=["GET"])
    router.add_api_route("/cases/{run_id}", page(case), methods=["GET"])

    def confirmations(request: Request, session: Session, cookie: str) -> Response:
        pending = portal.confirmations(session.subject)
        for entry in pending:
            entry.pop("token", None)  # a bearer secret: it never leaves the server
        return portal.render(
            "confirmations.html",
            session,
            cookie,
            pending=pending,
            done=request.query_params.get("done", ""),
        )

    router.add_api_route("/confirmations", page(confirmations), methods=["GET"])
    add_chat_routes(
        router,
        portal,
        page,
        form,
        not_found=NotFound,
        refused=FormRefused,
    )

    # -- forms ------------------------------------------------------------------------------

    def do_grant(request: Request, session: Session, fields: dict[str, str]) -> str:
        purpose, categories, notice = portal.consent_purpose(fields.get("purpose", ""))
        now = portal.now()
        current = accord.consent.grants(portal.tenant, session.subject)
        if not any(g.purpose == purpose and _active(g, now) for g in current):
            accord.consent.grant(
                portal.tenant,
                session.subject,
                purpose=purpose,
                categories=categories,
                channel=CHANNEL,
                notice_version=notice,
                actor=f"customer/{session.subject}",
            )
        return f"{PREFIX}/consents?done=granted"

    def do_withdraw(request: Request, session: Session, fields: dict[str, str]) -> str:
        purpose, _, _ = portal.consent_purpose(fields.get("purpose", ""))
        accord.consent.withdraw_purpose(
            portal.tenant,
            session.subject,
            purpose,
            actor=f"customer/{session.subject}",
            reason="withdrawn in the customer portal",
        )
        return f"{PREFIX}/consents?done=withdrawn"

    def do_answer(request: Request, session: Session, fields: dict[str, str]) -> str:
        answer = fields.get("answer", "")
        if answer not in ("confirm", "refuse"):
            raise FormRefused("Choose confirm or decline.")
        pending = portal.own_confirmation(
            session.subject, fields.get("run_id", ""), fields.get("block", "")
        )
        if not pending["portal"]:
            raise FormRefused("This request can only be answered by e-mail or text message.")
        accord.confirm(pending["token"], answer, channel=CHANNEL)
        back = fields.get("back", "")
        if CHAT_BACK.fullmatch(back):
            portal.wait_for_reply(session.subject, back.removeprefix(f"{PREFIX}/chat/"))
            return f"{back}#latest"
        return f"{PREFIX}/confirmations?done={'confirmed' if answer == 'confirm' else 'declined'}"

    router.add_api_route("/confirmations/answer", form(do_answer), methods=["POST"])
    router.add_api_route("/consents/grant", form(do_grant), methods=["POST"])
    router.add_api_route("/consents/withdraw", form(do_withdraw), methods=["POST"])
    from accord.portal._channels import add_channel_routes  # noqa: PLC0415 - it imports _app

    add_channel_routes(router, portal)
    return router


def _back(path: str, back: str) -> str:
    """Where a refused form's page links back to: the page the form was on."""
    if CHAT_BACK.fullmatch(back):
        return back
    if path.startswith(f"{PREFIX}/chat/") and path.count("/") == 4:  # /portal/chat/ID/act
        return path.rsplit("/", 1)[0]
    if path.startswith(f"{PREFIX}/chat"):
        return f"{PREFIX}/chat"
    if path.startswith(f"{PREFIX}/confirmations"):
        return f"{PREFIX}/confirmations"
    return f"{PREFIX}/consents"


def _same(expected: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(expected, given)


def _to_sign_in(request: Request, why: str) -> Response:
    return RedirectResponse(f"{PREFIX}/sign-in?why={quote(why)}", status_code=303)


def _signed_in(portal: Portal, request: Request, subject: str) -> Response:
    session = Session(portal.tenant, subject, portal.now() + SESSION_SECONDS)
    response = RedirectResponse(f"{PREFIX}/cases", status_code=303)
    response.set_cookie(
        COOKIE,
        portal.signer.sign(session),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
        max_age=int(SESSION_SECONDS),
    )
    return response


def static_files() -> StaticFiles:
    """The portal's stylesheet, served at ``/portal/static``."""
    return StaticFiles(directory=str(resources.files("accord.portal").joinpath("static")))
