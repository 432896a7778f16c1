"""Evidence bundles: selected entries with inclusion proofs against a fresh signed tree head,
the earlier heads with consistency proofs to it, and the public keys that signed them.

A bundle is one JSON document that ``accord/audit/verifier.py`` checks with nothing but the
standard library and ``cryptography`` (``python verifier.py bundle.json``). Sealed personal
parts travel as ciphertext: the bundle proves what was recorded without disclosing it.
"""

from __future__ import annotations

from typing import Any

from accord.audit._keys import public_key_text
from accord.audit._ledger import Ledger
from accord.audit.verifier import BUNDLE_FORMAT
from accord.errors import InputError


def export_bundle(
    ledger: Ledger,
    tenant: str,
    *,
    run_id: str | None = None,
    subject_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """An evidence bundle for the entries of a run, a subject or a time range (filters
    combine). A new head is signed first, so the bundle covers everything committed so far.

    Raises:
        InputError: no filter was given, or nothing matches.
    """
    if run_id is None and subject_id is None and since is None and until is None:
        raise InputError(
            "say which entries to export",
            hint="--run RUN_ID, --subject SUBJECT, or --since/--until for a time range",
        )
    head = ledger.issue_head(tenant)
    selected = [
        e
        for e in ledger.entries(
            tenant, run_id=run_id, subject_id=subject_id, since=since, until=until
        )
        if e.index < head.tree_size
    ]
    if not selected:
        raise InputError(
            "no ledger entries match the selection",
            hint="check the run id, subject or times; 'accord audit entries' lists entries",
        )
    entries = []
    for entry in selected:
        proof = ledger.inclusion_proof(tenant, entry.index, tree_size=head.tree_size)
        entries.append(
            {"index": entry.index, "entry": entry.data.decode(), "inclusion_proof": proof.path}
        )
    earlier: list[dict[str, Any]] = []
    earlier_heads: list[dict[str, Any]] = []
    for old in ledger.heads(tenant):
        if old.tree_size == 0 or old.tree_size > head.tree_size or old == head:
            continue
        consistency = ledger.consistency_proof(tenant, old.tree_size, head.tree_size)
        earlier_heads.append(old.to_json())
        earlier.append({"head": old.to_json(), "consistency_proof": consistency.path})
    used = {head.key_id, *(old["key_id"] for old in earlier_heads)}
    return {
        "format": BUNDLE_FORMAT,
        "log_id": head.log_id,
        "tenant": tenant,
        "exported_at": ledger.clock.now(),
        "selection": {"run": run_id, "subject": subject_id, "since": since, "until": until},
        "tree_head": head.to_json(),
        "earlier_heads": earlier,
        "public_keys": {
            key_id: public_key_text(raw)
            for key_id, raw in sorted(ledger.keyring.trusted.items())
            if key_id in used
        },
        "entries": entries,
    }
