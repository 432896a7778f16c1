"""Offer catalogues and outcomes in the database, and the contact history a choice reads.

A catalogue is deployed in versions; choices read the newest. Each choice's outcome (the
customer accepted it or not) is recorded once, and teaches method ``bandit`` its acceptance
rates. The contact history is not kept here: it is every executed call of a contact
capability in Accord's own decision records, so contacts made by any journey count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId, digest
from accord.errors import InputError
from accord.offers._catalogue import Compiled, OfferCatalogue
from accord.offers._choose import Contact, Stats
from accord.storage import Database
from accord.storage._schema import decisions, offer_catalogues, offer_outcomes, transitions

Recorded = Literal["recorded", "duplicate"]


@dataclass(frozen=True, slots=True)
class Chosen:
    """A choice an offer block made, as its run recorded it."""

    choice_id: str
    catalogue: str
    version: int
    offer: str


class Offers:
    """Deployed catalogues, recorded outcomes and contact history, per tenant."""

    def __init__(self, db: Database, ledger: Ledger, clock: Clock) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock
        self._compiled: dict[tuple[str, str, int], Compiled] = {}

    def deploy(self, tenant: TenantId, spec: OfferCatalogue, *, actor: str) -> int:
        """Deploy ``spec``; the same catalogue again is a no-op. Returns its version.

        Raises:
            InputError: a different catalogue of that name has this version or a later one.
        """
        try:
            return self._deploy(tenant, spec, actor=actor)
        except sa.exc.IntegrityError:
            # another deployment of this version won the race: the same catalogue is a no-op,
            # a different one is refused as it would have been a moment later
            return self._deploy(tenant, spec, actor=actor)

    def _deploy(self, tenant: TenantId, spec: OfferCatalogue, *, actor: str) -> int:
        body = spec.model_dump(mode="json")
        fingerprint = digest(body)
        now = self.clock.now()
        with self.db.transaction() as connection:
            latest = self._latest(connection, tenant, spec.catalogue)
            if latest is not None:
                if latest["digest"] == fingerprint:
                    return int(latest["version"])
                if spec.version <= latest["version"]:
                    raise InputError(
                        f"offer catalogue {spec.catalogue!r} v{latest['version']} is deployed "
                        f"and differs; a changed catalogue needs a version above "
                        f"{latest['version']}",
                        hint=f"set `version: {latest['version'] + 1}` in the file",
                    )
            connection.execute(
                sa.insert(offer_catalogues).values(
                    tenant_id=tenant,
                    name=spec.catalogue,
                    version=spec.version,
                    spec=json.dumps(body),
                    digest=fingerprint,
                    deployed_by=actor,
                    deployed_at=now,
                )
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.offer_catalogue(
                        catalogue=spec.catalogue,
                        version=spec.version,
                        digest=fingerprint,
                        actor=actor,
                        at=now,
                    )
                ],
            )
        return spec.version

    def catalogue(self, tenant: str, name: str, version: int | None = None) -> Compiled:
        """Version ``version`` of catalogue ``name`` (the newest when None), compiled.

        Raises:
            InputError: no such catalogue (or version) is deployed.
        """
        with self.db.read() as connection:
            row = (
                self._latest(connection, tenant, name)
                if version is None
                else connection.execute(
                    sa.select(offer_catalogues).where(
                        offer_catalogues.c.tenant_id == tenant,
                        offer_catalogues.c.name == name,
                        offer_catalogues.c.version == version,
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise InputError(
                f"no offer catalogue {name!r}"
                + (f" v{version}" if version is not None else "")
                + " is deployed",
                hint="deploy it: accord offers deploy FILE",
            )
        key = (tenant, name, int(row["version"]))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = Compiled(OfferCatalogue.model_validate(json.loads(row["spec"])))
            self._compiled[key] = compiled
        return compiled

    def deployed(self, tenant: TenantId) -> list[dict[str, Any]]:
        """Every deployed catalogue's newest version, with its offers and recorded outcomes."""
        with self.db.read() as connection:
            rows = list(
                connection.execute(
                    sa.select(offer_catalogues)
                    .where(offer_catalogues.c.tenant_id == tenant)
                    .order_by(offer_catalogues.c.name, offer_catalogues.c.version)
                ).mappings()
            )
        newest: dict[str, Any] = {}
        for row in rows:
            newest[row["name"]] = row
        listed = []
        for name, row in newest.items():
            spec = OfferCatalogue.model_validate(json.loads(row["spec"]))
            stats = self.stats(tenant, name)
            listed.append(
                {
                    "catalogue": name,
                    "version": row["version"],
                    "method": spec.ranking.method,
                    "deployed_by": row["deployed_by"],
                    "deployed_at": row["deployed_at"],
                    "offers": [
                        {
                            "offer": o.name,
                            "accepted": stats.get(o.name, Stats()).accepted,
                            "trials": stats.get(o.name, Stats()).trials,
                            "sensitive": o.sensitive,
                        }
                        for o in spec.offers
                    ],
                }
            )
        return listed

    def chosen(self, tenant: str, run_id: str, choice_id: str) -> Chosen | None:
        """The choice ``choice_id`` as run ``run_id``'s history recorded it, or None when the
        run made no such choice."""
        with self.db.read() as connection:
            rows: list[str] = list(
                connection.execute(
                    sa.select(transitions.c.detail).where(
                        transitions.c.tenant_id == tenant,
                        transitions.c.run_id == run_id,
                        transitions.c.kind == "offer.chosen",
                    )
                ).scalars()
            )
            for text in rows:
                detail = json.loads(text)
                output = detail.get("output") or {}
                if output.get("choice") == choice_id and detail.get("offer"):
                    return Chosen(
                        choice_id, str(detail["catalogue"]), int(detail["version"]), detail["offer"]
                    )
        return None

    def record(
        self,
        tenant: str,
        *,
        choice_id: str,
        catalogue: str,
        offer: str,
        subject_id: str,
        accepted: bool,
        version: int | None = None,
    ) -> Recorded:
        """Record whether the subject accepted the offer of one choice; the first answer counts.

        Raises:
            InputError: the catalogue (``version``, or the newest) has no such offer.
        """
        compiled = self.catalogue(tenant, catalogue, version)
        if compiled.spec.offer(offer) is None:
            known = ", ".join(o.name for o in compiled.spec.offers)
            raise InputError(
                f"offer catalogue {catalogue!r} has no offer {offer!r}", hint=f"offers: {known}"
            )
        try:
            with self.db.transaction() as connection:
                found = connection.execute(
                    sa.select(offer_outcomes.c.choice_id).where(
                        offer_outcomes.c.tenant_id == tenant,
                        offer_outcomes.c.choice_id == choice_id,
                    )
                ).first()
                if found is not None:
                    return "duplicate"
                connection.execute(
                    sa.insert(offer_outcomes).values(
                        tenant_id=tenant,
                        choice_id=choice_id,
                        catalogue=catalogue,
                        offer=offer,
                        subject_id=subject_id,
                        accepted=accepted,
                        at=self.clock.now(),
                    )
                )
        except sa.exc.IntegrityError:
            # another call recorded this choice between our read and our insert
            return "duplicate"
        return "recorded"

    def stats(self, tenant: str, catalogue: str) -> dict[str, Stats]:
        """Accepted and total recorded outcomes per offer of ``catalogue``."""
        accepted = sa.func.sum(sa.case((offer_outcomes.c.accepted, 1), else_=0))
        with self.db.read() as connection:
            rows = connection.execute(
                sa.select(offer_outcomes.c.offer, accepted, sa.func.count())
                .where(
                    offer_outcomes.c.tenant_id == tenant,
                    offer_outcomes.c.catalogue == catalogue,
                )
                .group_by(offer_outcomes.c.offer)
            ).all()
        return {str(r[0]): Stats(int(r[1] or 0), int(r[2])) for r in rows}

    def contacts(
        self, tenant: str, subject_id: str, channels: Mapping[str, tuple[str, ...]], since: float
    ) -> list[Contact]:
        """The subject's contacts since ``since``: every executed call, by any journey, of a
        capability that ``channels`` says contacts them on a channel."""
        channel_of = {cap: channel for channel, caps in channels.items() for cap in caps}
        if not channel_of:
            return []
        with self.db.read() as connection:
            rows = connection.execute(
                sa.select(decisions.c.capability, decisions.c.at).where(
                    decisions.c.tenant_id == tenant,
                    decisions.c.subject_id == subject_id,
                    decisions.c.at >= since,
                    decisions.c.outcome == "executed",
                    decisions.c.capability.in_(sorted(channel_of)),
                )
            ).all()
        return [Contact(channel_of[str(r[0])], str(r[0]), float(r[1])) for r in rows]

    @staticmethod
    def _latest(connection: sa.Connection, tenant: str, name: str) -> Any:
        return (
            connection.execute(
                sa.select(offer_catalogues)
                .where(offer_catalogues.c.tenant_id == tenant, offer_catalogues.c.name == name)
                .order_by(offer_catalogues.c.version.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
