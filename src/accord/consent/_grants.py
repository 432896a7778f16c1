"""Consent grants and the history of consent changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

GrantStatus = Literal["active", "expired", "withdrawn", "not_yet"]
ConsentEventKind = Literal["granted", "withdrawn", "basis_set"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A subject's consent to one purpose for some personal-data categories.

    Attributes:
        grant_id: also the ``consentReceiptID`` of its receipt.
        purpose: a ``dpv:`` purpose or an organisation's own term.
        categories: ``pd:`` categories (or custom terms) the consent covers.
        channel: where consent was collected (``web``, ``app``, ``phone``...).
        notice_version: the version of the privacy notice the subject was shown.
        granted_at: when consent takes effect (epoch seconds).
        expires_at: when it lapses by itself, if ever.
        withdrawn_at: when the subject withdrew it, if they did.
        receipt: the Kantara Consent Receipt v1.1 document issued for the grant.
    """

    grant_id: str
    tenant_id: str
    subject_id: str
    purpose: str
    categories: tuple[str, ...]
    channel: str
    notice_version: str
    granted_at: float
    expires_at: float | None
    withdrawn_at: float | None
    receipt: dict[str, Any]

    def status_at(self, t: float) -> GrantStatus:
        """The grant's state at time ``t``.

        A withdrawal counts from the moment it takes effect, even for a grant that has not
        started or has already lapsed; expiry counts from ``expires_at`` itself.
        """
        if self.withdrawn_at is not None and self.withdrawn_at <= t:
            return "withdrawn"
        if t < self.granted_at:
            return "not_yet"
        if self.expires_at is not None and self.expires_at <= t:
            return "expired"
        return "active"

    def is_active_at(self, t: float) -> bool:
        """Whether the grant can be relied on at ``t``."""
        return (
            self.granted_at <= t
            and (self.expires_at is None or self.expires_at > t)
            and (self.withdrawn_at is None or self.withdrawn_at > t)
        )


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One entry of the append-only consent history.

    Attributes:
        kind: ``granted``, ``withdrawn`` or ``basis_set``.
        at: when the change was recorded.
        subject_id: the subject, except for ``basis_set`` (a tenant-wide change).
        grant_id: the grant concerned, for ``granted`` and ``withdrawn``.
        actor: who made the change.
        detail: what changed (purpose, categories, times, reason, previous basis...).
    """

    event_id: str
    tenant_id: str
    subject_id: str | None
    grant_id: str | None
    kind: str
    at: float
    actor: str
    detail: dict[str, Any]
