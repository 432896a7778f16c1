"""Humans in the loop: review items, handoff packets, queues, SLAs, decisions and feedback."""

from accord.reviews._confirmations import ConfirmationResult, Confirmations, ConfirmationSigner
from accord.reviews._decisions import DECISIONS, DecisionResult, Feedback
from accord.reviews._inbox import ReviewInbox, item_packet
from accord.reviews._packet import (
    PACKET_SCHEMA,
    Attempt,
    Evidence,
    HandoffPacket,
    InfoExchange,
    PolicyContext,
    ProposedCall,
    Recommendation,
    ReviewKind,
    RunRef,
    Source,
    SubjectSummary,
    Verified,
    packet_json_schema,
)
from accord.reviews._people import Person, Queue

__all__ = [
    "DECISIONS",
    "PACKET_SCHEMA",
    "Attempt",
    "ConfirmationResult",
    "ConfirmationSigner",
    "Confirmations",
    "DecisionResult",
    "Evidence",
    "Feedback",
    "HandoffPacket",
    "InfoExchange",
    "Person",
    "PolicyContext",
    "ProposedCall",
    "Queue",
    "Recommendation",
    "ReviewInbox",
    "ReviewKind",
    "RunRef",
    "Source",
    "SubjectSummary",
    "Verified",
    "item_packet",
    "packet_json_schema",
]
