"""The support chat: the signed-in customer's conversations, each carried by a durable run of the
catalogue's chat journey (``portal.yaml``: ``chat.journey``).

A message the customer writes reaches the run as a signal and joins the sealed transcript; the
run's replies come back through the gateway (``conversation.say``). When the run asks for
consent in the conversation, the page shows the purpose in the catalogue's words; agreeing
records a grant on the channel ``chat`` with the notice version, exactly as the consent centre
does, and tells the run. The pages never decide: the journey does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accord.errors import RunNotFound
from accord.portal._sign_in import Session
from accord.service import Conversation, ConversationNotFound, Message
from accord.storage import TERMINAL

if TYPE_CHECKING:
    from accord.portal._app import Portal

CHAT_CHANNEL = "chat"
CONSENT_WAIT = "event:chat_consent"
BUSY = ("ready", "running")
AUTHORS = {"customer": "You", "accord": "Support assistant", "staff": "Our team"}


def add_chat_routes(
    router: APIRouter,
    portal: Portal,
    page: Callable[[Callable[..., Response]], Callable[[Request], Any]],
    form: Callable[[Callable[..., str]], Callable[[Request], Any]],
    *,
    not_found: type[Exception],
    refused: type[Exception],
) -> None:
    """``/portal/chat``: the list, a conversation, writing, and answering a consent request."""
    accord = portal.accord
    prefix = "/portal/chat"

    def journey() -> str:
        if portal.catalogue.chat is None:
            raise refused("The support chat is not available here.")
        return str(portal.catalogue.chat.journey)

    def own(subject: str, conversation_id: str) -> Conversation:
        try:
            found: Conversation = accord.conversations.get(portal.tenant, subject, conversation_id)
        except ConversationNotFound as exc:
            raise not_found(conversation_id) from exc
        return found

    def state(found: Conversation) -> tuple[str, list[str]]:
        if found.run_id is None:
            return "failed", []
        try:
            view = accord.runtime.get(portal.tenant, found.run_id)
        except RunNotFound:
            return "failed", []
        return view.status, [p.waiting_for for p in view.positions if p.waiting_for]

    def lines(found: Conversation) -> list[dict[str, Any]]:
        transcript: list[Message] = accord.conversations.transcript(portal.tenant, found)
        shown = []
        for message in transcript:
            who = AUTHORS.get(message.author, "Our team")
            shown.append(
                {
                    "seq": message.seq,
                    "who": who,
                    "mine": message.author == "customer",
                    "kind": message.kind,
                    "text": message.text if message.text is not None else "(erased)",
                    "at": message.at,
                    "purpose": message.data.get("purpose"),
                }
            )
        return shown

    def chat_list(request: Request, session: Session, cookie: str) -> Response:
        conversations = accord.conversations.of_subject(portal.tenant, session.subject)
        rows = []
        for found in conversations:
            status, _ = state(found)
            transcript = lines(found)
            rows.append(
                {
                    "id": found.conversation_id,
                    "opened_at": found.opened_at,
                    "open": status not in TERMINAL,
                    "last": transcript[-1]["text"] if transcript else "",
                }
            )
        return portal.render(
            "chat_list.html",
            session,
            cookie,
            conversations=rows,
            available=portal.catalogue.chat is not None,
        )

    def chat(request: Request, session: Session, cookie: str) -> Response:
        found = own(session.subject, request.path_params["conversation_id"])
        status, waiting = state(found)
        transcript = lines(found)
        asking = None
        if CONSENT_WAIT in waiting:
            requests = [m for m in transcript if m["kind"] == "consent_request"]
            purpose_id = requests[-1]["purpose"] if requests else None
            # a purpose missing from the catalogue cannot be granted here: no question is shown
            asking = portal.catalogue.purposes.get(purpose_id) if purpose_id else None
        pending = portal.confirmations(session.subject)
        for entry in pending:
            entry.pop("token", None)  # a bearer secret: it never leaves the server
        return portal.render(
            "chat.html",
            session,
            cookie,
            conversation=found,
            messages=transcript,
            ended=status in TERMINAL,
            busy=status in BUSY,
            with_staff=any(w.startswith("human:") for w in waiting),
            asking=asking,
            pending=pending,
            back=f"{prefix}/{found.conversation_id}",
        )

    def start(request: Request, session: Session, fields: dict[str, str]) -> str:
        found = accord.conversations.open(portal.tenant, session.subject, journey=journey())
        return f"{prefix}/{found.conversation_id}"

    def write(request: Request, session: Session, fields: dict[str, str]) -> str:
        found = own(session.subject, request.path_params["conversation_id"])
        if state(found)[0] in TERMINAL:
            raise refused("This conversation has ended. Start a new one to write to us.")
        text = fields.get("text", "").strip()
        if not text:
            raise refused("Write a message first.")
        if len(text) > 2000:
            raise refused(
                f"That message has {len(text)} characters; the limit is 2000. Send it in parts."
            )
        accord.conversations.post(portal.tenant, session.subject, found.conversation_id, text)
        return f"{prefix}/{found.conversation_id}#latest"

    def consent(request: Request, session: Session, fields: dict[str, str]) -> str:
        found = own(session.subject, request.path_params["conversation_id"])
        _, waiting = state(found)
        if CONSENT_WAIT not in waiting:
            raise refused("Nothing in this conversation is waiting for your consent.")
        answer = fields.get("answer", "")
        if answer not in ("agree", "refuse"):
            raise refused("Choose I agree or No, thank you.")
        purpose, categories, notice = portal.consent_purpose(fields.get("purpose", ""))
        asked = [m for m in lines(found) if m["kind"] == "consent_request"]
        if not asked or asked[-1]["purpose"] != purpose:
            raise refused("This conversation did not ask for that consent.")
        now = portal.now()
        active = any(
            g.purpose == purpose
            and g.withdrawn_at is None
            and g.granted_at <= now
            and (g.expires_at is None or g.expires_at > now)
            for g in accord.consent.grants(portal.tenant, session.subject)
        )
        if answer == "agree" and not active:
            accord.consent.grant(
                portal.tenant,
                session.subject,
                purpose=purpose,
                categories=categories,
                channel=CHAT_CHANNEL,
                notice_version=notice,
                actor=f"customer/{session.subject}",
            )
        accord.conversations.answer_consent(
            portal.tenant,
            session.subject,
            found.conversation_id,
            purpose=purpose,
            granted=answer == "agree",
        )
        return f"{prefix}/{found.conversation_id}#latest"

    def settled(act: Callable[[Request, Session, dict[str, str]], str]) -> Callable[..., str]:
        """``act``, then a short wait for the run to answer, so the page the customer lands on
        usually holds the reply (a page shows a refresh link while the run is still busy)."""

        def waited(request: Request, session: Session, fields: dict[str, str]) -> str:
            target = act(request, session, fields)
            conversation_id = target.removeprefix(f"{prefix}/").split("#")[0]
            portal.wait_for_reply(session.subject, conversation_id)
            return target

        return waited

    # the router's own prefix is /portal
    router.add_api_route("/chat", page(chat_list), methods=["GET"])
    router.add_api_route("/chat/{conversation_id}", page(chat), methods=["GET"])
    router.add_api_route("/chat/new", form(settled(start)), methods=["POST"])
    router.add_api_route("/chat/{conversation_id}/messages", form(settled(write)), methods=["POST"])
    router.add_api_route(
        "/chat/{conversation_id}/consent", form(settled(consent)), methods=["POST"]
    )
