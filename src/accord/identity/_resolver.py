"""Incremental resolution of source records to canonical subjects, and the reversible merges
and splits people make.

A record arrives from a system (``crm``, ``billing``...) under that system's id. It is
normalised, its blocking keys find the stored records it could be the same person as, the match
model scores each of them, and the best-scoring subject decides the outcome:

- ``link``: the record joins that subject;
- ``possible``: the record gets a subject of its own and a *candidate* asks a person to merge
  the two or keep them apart;
- ``none``: the record gets a subject of its own.

Each outcome commits with its ledger entry. A merge moves every record and context item of one
subject to another and remembers what it moved, so that :meth:`Resolver.split` can undo it; a
split of chosen records moves them to a new subject. Subjects a person kept apart are never
linked again by the resolver.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Connection

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId, digest
from accord.errors import InputError
from accord.identity._blocking import DEFAULT_BLOCKING, Blocking
from accord.identity._context import replace_attributes
from accord.identity._fellegi_sunter import MatchModel, MatchScore, default_model, estimate
from accord.identity._merges import SubjectDecisions, current_of
from accord.identity._normalise import IdentityRecord, normalise
from accord.storage import Database
from accord.storage import identity as stored

Outcome = Literal["linked", "created", "possible", "updated", "unchanged"]

MAX_ID = 128
MAX_BLOCK = 50
"""A blocking key shared by more records than this is too common to find candidates by."""
CHUNK = 200
"""Records resolved per transaction."""

_SOURCE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")

FIELD_CATEGORIES: Mapping[str, str] = {
    "given_name": "pd:Name",
    "surname": "pd:Name",
    "birth_date": "pd:BirthDate",
    "email": "pd:EmailAddress",
    "phone": "pd:TelephoneNumber",
    "street_number": "pd:PhysicalAddress",
    "address": "pd:PhysicalAddress",
    "address_2": "pd:PhysicalAddress",
    "locality": "pd:PhysicalAddress",
    "postcode": "pd:PostalCode",
    "state": "pd:PhysicalAddress",
    "country": "pd:Country",
    "national_id": "pd:OfficialID",
}
"""The data category of each canonical identity field, as its context attribute carries it."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record as a system holds it: which system, its id there, its fields and region."""

    source: str
    record_id: str
    fields: Mapping[str, Any]
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolving one record did."""

    source: str
    record_id: str
    subject_id: str
    outcome: Outcome
    probability: float | None = None
    candidate_id: str | None = None
    other_subject_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResolveReport:
    """A batch's resolutions and the model version that scored them."""

    model_version: int
    resolutions: tuple[Resolution, ...]

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for resolution in self.resolutions:
            found[resolution.outcome] = found.get(resolution.outcome, 0) + 1
        return found


@dataclass(frozen=True, slots=True)
class SubjectView:
    """A subject, its source records (normalised fields) and its merge history."""

    subject: stored.SubjectRow
    records: tuple[stored.SourceRecordRow, ...]
    merges: tuple[stored.MergeRow, ...]
    candidates: tuple[stored.CandidateRow, ...]


@dataclass
class Resolver(SubjectDecisions):
    """Resolves records for every tenant of one database."""

    db: Database
    ledger: Ledger
    clock: Clock
    new_id: Callable[[str], str]
    blocking: Blocking = field(default=DEFAULT_BLOCKING)
    default_country: str | None = None
    max_block: int = MAX_BLOCK

    # -- the model

    def model(self, tenant: str) -> tuple[int, MatchModel]:
        """The tenant's newest match model (version 0: the built-in default)."""
        with self.db.read() as connection:
            found = stored.latest_model(connection, TenantId(tenant))
        if found is None:
            return 0, default_model()
        version, text, _ = found
        return version, MatchModel.from_json(json.loads(text))

    def train(self, tenant: str, *, by: str) -> tuple[int, MatchModel]:
        """Estimate the model's weights by EM from every stored record; store it as the
        tenant's new version.

        Raises:
            InputError: fewer than two records are stored.
        """
        with self.db.read() as connection:
            rows = stored.all_records(connection, TenantId(tenant))
        records = [IdentityRecord(r.source, r.record_id, r.fields) for r in rows]
        if len(records) < 2:
            raise InputError(
                f"estimating match weights needs stored records; tenant {tenant!r} has "
                f"{len(records)}",
                hint="resolve some records first (accord identity resolve FILE)",
            )
        return self.put_model(tenant, estimate(records, blocking=self.blocking), "em", by=by)

    def put_model(
        self, tenant: str, model: MatchModel, method: str, *, by: str
    ) -> tuple[int, MatchModel]:
        """Store ``model`` (estimated, or configured by a person) as the newest version."""
        text = json.dumps(model.to_json(), sort_keys=True)
        now = self.clock.now()
        with self.db.transaction() as connection:
            version = stored.insert_model(
                connection, TenantId(tenant), model=text, method=method, by=by, at=now
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.identity_event(
                        "identity.model",
                        at=now,
                        body={
                            "version": version,
                            "method": method,
                            "by": by,
                            "digest": digest(model.to_json()),
                        },
                    )
                ],
            )
        return version, model

    # -- resolving

    def resolve(
        self,
        tenant: str,
        records: Sequence[SourceRecord],
        *,
        purpose: str | None = "dpv:CustomerRelationshipManagement",
        estimate_first: bool = True,
    ) -> ResolveReport:
        """Resolve ``records`` one after another, each seeing those before it.

        With no stored model and ``estimate_first``, the weights are first estimated by EM
        from these records and stored (a tenant's first load teaches the model); otherwise the
        newest stored model scores. All records are checked before any is stored. Each
        record's fields become context attributes of its subject, collected for ``purpose``.

        Raises:
            InputError: a record's source or id is malformed (which record, and why);
                nothing was stored.
        """
        tenant_id = TenantId(tenant)
        normalised = [self._normalise(i, record) for i, record in enumerate(records)]
        version, model = self.model(tenant)
        if version == 0 and estimate_first and len(normalised) >= 50:
            version, model = self.put_model(
                tenant, estimate(normalised, blocking=self.blocking), "em", by="resolver"
            )
        resolutions: list[Resolution] = []
        for start in range(0, len(records), CHUNK):
            with self.db.transaction() as connection:
                stored.lock(connection, tenant_id)
                recorded: list[entries.Entry] = []
                for record, norm in zip(
                    records[start : start + CHUNK], normalised[start : start + CHUNK], strict=True
                ):
                    resolution = self._resolve_one(
                        connection, tenant_id, record, norm, model, version, recorded, purpose
                    )
                    resolutions.append(resolution)
                self.ledger.append(connection, tenant, recorded)
        return ResolveReport(version, tuple(resolutions))

    def _normalise(self, index: int, record: SourceRecord) -> IdentityRecord:
        where = f"record {index + 1} ({record.source}/{record.record_id})"
        if not _SOURCE.match(record.source):
            raise InputError(
                f"{where}: source {record.source!r} is not a system name",
                hint="use the system's short name in lower case, e.g. crm or billing",
            )
        if not 0 < len(record.record_id) <= MAX_ID:
            raise InputError(
                f"{where}: a record id has 1 to {MAX_ID} characters",
                hint="use the id the system gives the record",
            )
        if record.region is not None and not 0 < len(record.region) <= 64:
            raise InputError(f"{where}: a region has 1 to 64 characters")
        norm = normalise(
            record.fields,
            source=record.source,
            record_id=record.record_id,
            default_region=self.default_country,
        )
        if not norm.fields:
            raise InputError(
                f"{where}: none of its fields is one a person can be recognised by",
                hint="give at least one of: name, e-mail, phone, date of birth, address",
            )
        return norm

    def _attributes(
        self,
        connection: Connection,
        tenant: TenantId,
        subject_id: str,
        record: SourceRecord,
        fields: Mapping[str, str],
        purpose: str | None,
        now: float,
    ) -> None:
        """The record's fields as the subject's context attributes, replacing its older ones."""
        rows = [
            stored.ContextItemRow(
                item_id=self.new_id("ctx"),
                subject_id=subject_id,
                kind="attribute",
                name=name,
                value=value,
                category=FIELD_CATEGORIES[name],
                source=record.source,
                record_id=record.record_id,
                region=record.region,
                purpose=purpose,
                recorded_at=now,
                anonymised_at=None,
            )
            for name, value in sorted(fields.items())
            if name in FIELD_CATEGORIES
        ]
        replace_attributes(connection, tenant, subject_id, rows)
        stored.insert_items(connection, tenant, rows)

    def _resolve_one(
        self,
        connection: Connection,
        tenant: TenantId,
        record: SourceRecord,
        norm: IdentityRecord,
        model: MatchModel,
        version: int,
        recorded: list[entries.Entry],
        purpose: str | None,
    ) -> Resolution:
        now = self.clock.now()
        fields = dict(norm.fields)
        keys = self.blocking.keys(norm)
        existing = stored.get_record(connection, tenant, record.source, record.record_id)
        if existing is not None:
            outcome: Outcome = "unchanged"
            if existing.fields != fields or existing.region != record.region:
                outcome = "updated"
                stored.put_record(
                    connection,
                    tenant,
                    source=record.source,
                    record_id=record.record_id,
                    subject_id=existing.subject_id,
                    fields=fields,
                    region=record.region,
                    link=existing.link,
                    probability=existing.probability,
                    keys=keys,
                    at=now,
                    exists=True,
                )
                self._attributes(
                    connection, tenant, existing.subject_id, record, fields, purpose, now
                )
                recorded.append(
                    self._entry(record, existing.subject_id, outcome, None, version, fields, now)
                )
            return Resolution(record.source, record.record_id, existing.subject_id, outcome)

        best = self._best_subjects(connection, tenant, norm, keys, model)
        linked = [(s, score) for s, score in best if _decision(model, score) == "link"]
        possible = [(s, score) for s, score in best if _decision(model, score) == "possible"]
        candidate_id: str | None = None
        other: str | None = None
        probability: float | None = None
        if linked:
            subject_id, score = linked[0]
            outcome, probability = "linked", score.probability
            # other subjects the record also links to may be the same person as this one
            for also, also_score in linked[1:]:
                if not stored.kept_apart(connection, tenant, subject_id, also):
                    self._candidate(
                        connection, tenant, record, subject_id, also, also_score, recorded, now
                    )
        else:
            subject_id = self.new_id("sub")
            stored.insert_subject(connection, tenant, subject_id, region=record.region, at=now)
            outcome = "created"
            if possible:
                other, score = possible[0]
                outcome, probability = "possible", score.probability
                candidate_id = self._candidate(
                    connection, tenant, record, subject_id, other, score, recorded, now
                )
        stored.put_record(
            connection,
            tenant,
            source=record.source,
            record_id=record.record_id,
            subject_id=subject_id,
            fields=fields,
            region=record.region,
            link="linked" if outcome == "linked" else "created",
            probability=probability,
            keys=keys,
            at=now,
            exists=False,
        )
        self._attributes(connection, tenant, subject_id, record, fields, purpose, now)
        recorded.append(self._entry(record, subject_id, outcome, probability, version, fields, now))
        return Resolution(
            record.source, record.record_id, subject_id, outcome, probability, candidate_id, other
        )

    def _best_subjects(
        self,
        connection: Connection,
        tenant: TenantId,
        norm: IdentityRecord,
        keys: Iterable[str],
        model: MatchModel,
    ) -> list[tuple[str, MatchScore]]:
        """Each candidate subject with its score, best first.

        A subject is scored as a whole: on each field, the most agreeing of its records'
        values counts. So a record that matches one of a subject's records on the name but
        contradicts another of its records on the date of birth carries that contradiction.
        """
        subjects = stored.subjects_sharing_keys(
            connection, tenant, frozenset(keys), max_per_key=self.max_block
        )
        rows = stored.records_of(connection, tenant, subjects) if subjects else []
        by_subject: dict[str, list[MatchScore]] = {}
        for row in rows:
            score = model.score(norm, IdentityRecord(row.source, row.record_id, row.fields))
            by_subject.setdefault(row.subject_id, []).append(score)
        best = {subject: _combined(model, scores) for subject, scores in by_subject.items()}
        return sorted(best.items(), key=lambda item: (-item[1].weight, item[0]))

    def _candidate(
        self,
        connection: Connection,
        tenant: TenantId,
        record: SourceRecord,
        subject_id: str,
        other: str,
        score: MatchScore,
        recorded: list[entries.Entry],
        now: float,
    ) -> str:
        candidate_id = self.new_id("idc")
        evidence = evidence_of(score)
        stored.insert_candidate(
            connection,
            tenant,
            stored.CandidateRow(
                candidate_id=candidate_id,
                source=record.source,
                record_id=record.record_id,
                subject_id=subject_id,
                other_subject_id=other,
                probability=score.probability,
                weight=score.weight,
                evidence=evidence,
                status="open",
                run_id=None,
                created_at=now,
                decided_at=None,
                decided_by=None,
                reason=None,
            ),
        )
        recorded.append(
            entries.identity_event(
                "identity.candidate",
                at=now,
                subject_id=subject_id,
                body={
                    "candidate": candidate_id,
                    "status": "open",
                    "subject": subject_id,
                    "other_subject": other,
                    "probability": round(score.probability, 6),
                    "weight": round(score.weight, 4),
                    "levels": evidence["levels"],
                },
            )
        )
        return candidate_id

    def _entry(
        self,
        record: SourceRecord,
        subject_id: str,
        outcome: Outcome,
        probability: float | None,
        version: int,
        fields: Mapping[str, str],
        now: float,
    ) -> entries.Entry:
        return entries.identity_event(
            "identity.resolved",
            at=now,
            subject_id=subject_id,
            body={
                "source": record.source,
                "record": record.record_id,
                "subject": subject_id,
                "outcome": outcome,
                "probability": None if probability is None else round(probability, 6),
                "model_version": version,
                "region": record.region,
                "fields_digest": digest(dict(fields)),
            },
        )

    # -- reading

    def show(self, tenant: str, subject_id: str) -> SubjectView:
        """A subject (followed through merges), its records, merges and possible links.

        Raises:
            InputError: no such subject.
        """
        tenant_id = TenantId(tenant)
        with self.db.read() as connection:
            current = current_of(connection, tenant_id, subject_id)
            subject = stored.get_subject(connection, tenant_id, current)
            assert subject is not None
            return SubjectView(
                subject,
                tuple(stored.records_of(connection, tenant_id, [current])),
                tuple(stored.merges_of(connection, tenant_id, current)),
                tuple(stored.list_candidates(connection, tenant_id, subject_id=current)),
            )

    def subject_of(self, tenant: str, source: str, record_id: str) -> str | None:
        """The subject a system's record belongs to, if it was resolved."""
        with self.db.read() as connection:
            row = stored.get_record(connection, TenantId(tenant), source, record_id)
        return None if row is None else row.subject_id


NAME_FIELDS = frozenset({"given_name", "surname"})


def _decision(model: MatchModel, score: MatchScore) -> str:
    """The model's decision, except that a name alone never links: namesakes and relatives
    share names, so a link the name carries by itself is asked about instead."""
    decision = model.classify(score)
    if decision == "link" and not any(
        f.weight > 0 and f.field not in NAME_FIELDS for f in score.fields
    ):
        return "possible"
    return decision


def _combined(model: MatchModel, scores: Sequence[MatchScore]) -> MatchScore:
    """One score from several records' scores: per field, the highest agreement level."""
    if len(scores) == 1:
        return scores[0]
    fields = []
    for column in zip(*(score.fields for score in scores), strict=True):
        observed = [f for f in column if f.level is not None]
        fields.append(max(observed, key=lambda f: f.level or 0) if observed else column[0])
    weight = math.fsum(f.weight for f in fields)
    return MatchScore(weight, model.probability(weight), tuple(fields))


def evidence_of(score: MatchScore) -> dict[str, Any]:
    """The per-field agreement behind a score, without the values compared."""
    return {
        "levels": {f.field: f.level for f in score.fields},
        "weights": {f.field: round(f.weight, 4) for f in score.fields},
        "probability": round(score.probability, 6),
        "weight": round(score.weight, 4),
    }
