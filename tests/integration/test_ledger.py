"""The ledger in a running Accord, on SQLite and PostgreSQL: one entry per recorded event in the
same transaction, signed heads and proofs, key rotation, crypto-shredding and legal holds,
evidence bundles checked by the standalone verifier, replay and explanations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import accord.audit.verifier as standalone
from accord.audit import ERASED, Erased, entries
from accord.core import TenantId
from accord.errors import InputError, LegalHold, SubjectErased
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import (
    consent_events,
    decisions,
    flag_changes,
    journeys,
    ledger_entries,
    policy_bundles,
    signals,
    transitions,
)
from accord.testing import FrozenClock

T = TenantId("default")
SUBJECT = "cus-7"

ORDER = """
journey: order
purpose: dpv:ServiceProvision
input: {value: string}
blocks:
  - id: fetch
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
  - id: tier
    kind: decide
    inputs: {tier: steps.fetch.tier}
    hit_policy: first
    rules:
      - {when: {tier: '"gold"'}, then: {review: false}}
    default: {review: true}
  - id: check
    kind: approve
    role: supervisor
  - id: echo
    kind: task
    capability: test.echo
    input: {value: input.value}
  - {id: done, kind: end, outcome: done, output: {echo: steps.echo.value}}
"""


def _setup(accord: Accord) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(ORDER))
    accord.consent.grant(
        T,
        SUBJECT,
        purpose="dpv:ServiceProvision",
        categories=["pd:Name", "pd:EmailAddress"],
        actor="test",
    )


def _order(accord: Accord, value: str = "secret-value", *, subject: str = SUBJECT) -> str:
    run_id = accord.runtime.start(T, "order", input={"value": value}, subject=subject).run_id
    accord.runtime.drive()
    accord.runtime.decide(T, run_id, "check", "approve", by="sam", reason="known customer")
    accord.runtime.drive()
    return run_id


def _count(accord: Accord, table: sa.Table) -> int:
    with accord.db.read() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _kinds(accord: Accord) -> Counter[str]:
    with accord.db.read() as connection:
        return Counter(r[0] for r in connection.execute(sa.select(ledger_entries.c.kind)).all())


def test_every_recorded_event_has_exactly_one_entry(accord: Accord) -> None:
    _setup(accord)
    run_id = _order(accord)
    accord.set_flag("capability:test.echo", False, actor="ops", reason="maintenance")
    accord.set_flag("capability:test.echo", True, actor="ops", reason="back")
    accord.runtime.cancel(
        T,
        accord.runtime.start(T, "order", input={"value": "x"}).run_id,
        reason="changed mind",
        by="cus",
    )
    accord.runtime.drive()
    kinds = _kinds(accord)
    assert kinds["run.transition"] == _count(accord, transitions)
    assert kinds["gateway.decision"] == _count(accord, decisions)
    executed = [d for d in accord.runtime.decisions(T, run_id) if d.outcome == "executed"]
    assert kinds["connector.call"] == len(executed) > 0
    assert kinds["consent.change"] == _count(accord, consent_events) == 1
    assert kinds["flag.change"] == _count(accord, flag_changes) == 2
    assert kinds["policy.deploy"] == _count(accord, policy_bundles) == 1
    assert kinds["journey.deploy"] == _count(accord, journeys) == 1
    assert kinds["human.decision"] == 1
    assert kinds["human.decision"] + kinds["signal"] == _count(accord, signals) == 2
    assert accord.verify_ledger().ok
    assert accord.runtime.get(T, run_id).outcome == "done"


def test_an_entry_commits_with_its_change_or_not_at_all(accord: Accord) -> None:
    before = accord.ledger.size("default")
    with pytest.raises(RuntimeError), accord.db.transaction() as connection:
        accord.ledger.append(
            connection,
            "default",
            [entries.subject_event("subject.hold", subject_id="x", actor="t", at=1.0)],
        )
        raise RuntimeError("the change it records fails")
    assert accord.ledger.size("default") == before
    with pytest.raises(InputError):
        accord.consent.grant(
            T, SUBJECT, purpose="dpv:NoSuchPurpose", categories=["pd:Name"], actor="test"
        )
    assert accord.ledger.size("default") == before
    assert accord.verify_ledger().ok


def test_heads_proofs_and_the_standalone_checks_agree(accord: Accord, clock: FrozenClock) -> None:
    _setup(accord)
    _order(accord)
    first = accord.tree_head(fresh=True)
    clock.advance(5)
    _order(accord, "second")
    head = accord.tree_head(fresh=True)
    assert head.tree_size > first.tree_size
    keys = accord.ledger.keyring.trusted
    standalone.verify_tree_head(head.to_json(), keys)
    root = bytes.fromhex(head.root_hash)
    stored = accord.ledger.entries("default")
    assert [e.index for e in stored] == list(range(head.tree_size))
    for entry in stored:
        proof = accord.inclusion_proof(entry.index, tree_size=head.tree_size)
        standalone.verify_inclusion(
            entry.index,
            head.tree_size,
            standalone.leaf_hash(entry.data),
            [bytes.fromhex(p) for p in proof.path],
            root,
        )
    consistency = accord.consistency_proof(first.tree_size, head.tree_size)
    standalone.verify_consistency(
        first.tree_size,
        head.tree_size,
        bytes.fromhex(first.root_hash),
        root,
        [bytes.fromhex(p) for p in consistency.path],
    )
    with pytest.raises(InputError, match="not in a tree"):
        accord.inclusion_proof(head.tree_size, tree_size=head.tree_size)
    with pytest.raises(InputError, match="cannot prove"):
        accord.consistency_proof(head.tree_size, head.tree_size + 1)


def test_heads_are_issued_on_an_interval_while_the_log_grows(
    make_accord: Callable[..., Accord], clock: FrozenClock
) -> None:
    import time

    accord = make_accord()
    accord.ledger.head_interval = 0.01
    _setup(accord)
    assert accord.ledger.issue_due_heads() == 1
    time.sleep(0.06)
    clock.advance(1)
    assert accord.ledger.issue_due_heads() == 0, "the log did not grow: no new head"
    accord.consent.grant(T, "cus-8", purpose="dpv:Marketing", categories=["pd:Name"], actor="t")
    time.sleep(0.06)
    assert accord.ledger.issue_due_heads() == 1
    heads = accord.ledger.heads("default")
    assert len(heads) == 2 and heads[-1].tree_size == accord.ledger.size("default")
    accord.consent.grant(T, "cus-9", purpose="dpv:Marketing", categories=["pd:Name"], actor="t")
    time.sleep(0.06)
    assert accord.ledger.issue_due_heads() == 0, "no time passed on the ledger's clock"


def test_a_rotated_key_signs_new_heads_and_old_heads_still_verify(
    accord: Accord, clock: FrozenClock
) -> None:
    _setup(accord)
    old = accord.tree_head(fresh=True)
    new_key = accord.rotate_signing_key()
    assert new_key.key_id != old.key_id
    clock.advance(1)
    _order(accord)
    head = accord.tree_head(fresh=True)
    assert head.key_id == new_key.key_id
    rotation = accord.ledger.entries("default", kinds=["ledger.key"])
    assert [e.body["key_id"] for e in rotation] == [old.key_id, new_key.key_id]
    assert rotation[-1].body["previous_key_id"] == old.key_id
    report = accord.verify_ledger()
    assert report.ok and report.heads == 2
    untrusting = {new_key.key_id: accord.ledger.keyring.trusted[new_key.key_id]}
    from accord.audit import verify_ledger

    distrusted = verify_ledger(
        accord.db, "default", log_id=accord.ledger.log_id("default"), trusted=untrusting
    )
    assert [p.kind for p in distrusted.problems] == ["head_untrusted_key"]


def test_erasure_shreds_personal_parts_and_the_ledger_still_verifies(accord: Accord) -> None:
    _setup(accord)
    run_id = _order(accord, "my-secret-value")
    accord.tree_head(fresh=True)
    with accord.db.read() as connection:
        raw = b"".join(r[0] for r in connection.execute(sa.select(ledger_entries.c.entry)))
    assert b"my-secret-value" not in raw, "personal data must be sealed, not in clear"
    assert accord.replay(run_id).input == {"value": "my-secret-value"}
    erasure = accord.erase_subject(SUBJECT, actor="dpo", reason="GDPR Art. 17 request 118")
    assert erasure.runs_scrubbed == 1
    report = accord.verify_ledger()
    assert report.ok, report.problems
    replayed = accord.replay(run_id)
    assert replayed.erased and replayed.input is None
    sealed = accord.ledger.entries("default", subject_id=SUBJECT)
    assert all(isinstance(e.personal, Erased) for e in sealed if "sealed" in e.envelope)
    assert any("sealed" in e.envelope for e in sealed)
    assert accord.runtime.get(T, run_id).input == {}
    assert accord.runtime.history(T, run_id)[0].detail == {"erased": True}
    recorded = accord.ledger.entries("default", kinds=["subject.erased"])
    assert recorded[-1].body["reason"] == "GDPR Art. 17 request 118"
    with pytest.raises(SubjectErased):
        accord.erase_subject(SUBJECT, actor="dpo", reason="again")
    size = accord.ledger.size("default")
    with pytest.raises(SubjectErased):
        accord.runtime.start(T, "order", input={"value": "after"}, subject=SUBJECT)
    assert accord.ledger.size("default") == size
    late = entries.human_decision(
        signal_id="s",
        run_id=run_id,
        subject_id=SUBJECT,
        block="b",
        payload={"decision": "approve", "reason": "late"},
        at=2.0,
    )
    with accord.db.transaction() as connection:
        (index,) = accord.ledger.append(connection, "default", [late])
    (written,) = [e for e in accord.ledger.entries("default") if e.index == index]
    assert written.personal is ERASED and "sealed" not in written.envelope
    assert accord.verify_ledger().ok
    assert accord.subject_status(SUBJECT)["key"] == "erased"


def test_a_legal_hold_blocks_erasure_and_both_are_recorded(accord: Accord) -> None:
    _setup(accord)
    _order(accord)
    accord.place_hold(SUBJECT, actor="legal", reason="litigation 2026-4")
    with pytest.raises(InputError, match="already under legal hold"):
        accord.place_hold(SUBJECT, actor="legal", reason="again")
    with pytest.raises(LegalHold):
        accord.erase_subject(SUBJECT, actor="dpo", reason="erasure request")
    assert accord.subject_status(SUBJECT)["key"] == "active"
    kinds = [e.kind for e in accord.ledger.entries("default", subject_id=SUBJECT)]
    assert kinds[-2:] == ["subject.hold", "subject.erasure_refused"]
    accord.release_hold(SUBJECT, actor="legal", reason="case closed")
    accord.erase_subject(SUBJECT, actor="dpo", reason="erasure request")
    kinds = [e.kind for e in accord.ledger.entries("default", subject_id=SUBJECT)]
    assert kinds[-2:] == ["subject.hold_released", "subject.erased"]
    assert accord.verify_ledger().ok


def test_erasure_is_refused_while_the_subject_has_runs_in_flight(accord: Accord) -> None:
    _setup(accord)
    run_id = accord.runtime.start(T, "order", input={"value": "v"}, subject=SUBJECT).run_id
    accord.runtime.drive()
    size = accord.ledger.size("default")
    with pytest.raises(InputError, match="in flight"):
        accord.erase_subject(SUBJECT, actor="dpo", reason="request")
    assert accord.ledger.size("default") == size
    assert accord.subject_status(SUBJECT)["key"] == "active"
    accord.runtime.cancel(T, run_id, reason="erasure", by="dpo")
    accord.runtime.drive()
    accord.erase_subject(SUBJECT, actor="dpo", reason="request")


def test_an_exported_bundle_verifies_standalone_and_a_forged_one_does_not(
    accord: Accord, tmp_path: Path
) -> None:
    _setup(accord)
    accord.tree_head(fresh=True)
    run_id = _order(accord)
    bundle = accord.export_evidence(run_id=run_id)
    assert {json.loads(e["entry"])["run"] for e in bundle["entries"]} == {run_id}
    assert bundle["earlier_heads"]
    copy = tmp_path / "verifier.py"
    shutil.copy(standalone.__file__, copy)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    key = next(iter(bundle["public_keys"].values()))
    ok = subprocess.run(
        [sys.executable, "-I", str(copy), str(path), "--key", key],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: ")
    forged = json.loads(json.dumps(bundle))
    entry = json.loads(forged["entries"][0]["entry"])
    entry["body"]["event"] = "run.forged"
    forged["entries"][0]["entry"] = json.dumps(entry, separators=(",", ":"), sort_keys=True)
    path.write_text(json.dumps(forged))
    rejected = subprocess.run(
        [sys.executable, "-I", str(copy), str(path), "--key", key],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert rejected.returncode == 1
    assert "is not in the signed tree" in rejected.stderr
    other_key = standalone.base64.b64encode(bytes(32)).decode()
    with pytest.raises(standalone.ProofError, match="which is not a trusted key"):
        standalone.verify_bundle(bundle, trusted_keys=[other_key])


def test_the_standalone_verifier_imports_nothing_of_accord(tmp_path: Path) -> None:
    copy = tmp_path / "verifier.py"
    shutil.copy(standalone.__file__, copy)
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('accord', 'sqlalchemy', 'pydantic', 'rfc8785', 'yaml')); print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(copy)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "[]"


def test_explain_tells_the_story_of_every_significant_decision(accord: Accord) -> None:
    _setup(accord)
    run_id = _order(accord)
    explanation = accord.explain(run_id)
    kinds = [d.kind for d in explanation.decisions]
    assert kinds.count("gateway") == 2 and "rules" in kinds and "human" in kinds
    gateway = next(d for d in explanation.decisions if d.kind == "gateway")
    assert gateway.facts["policy_bundle_version"] == 1
    assert gateway.facts["determining_policies"] == ["permit-all"]
    assert gateway.facts["consent_used"]["basis"] == "consent"
    assert gateway.facts["systems_consulted"] == ["test.profile"]
    human = next(d for d in explanation.decisions if d.kind == "human")
    assert human.facts["by"] == "sam" and human.facts["reason"] == "known customer"
    for decision in explanation.decisions:
        assert decision.evidence
    document = explanation.to_json()
    assert document["status"] == "completed" and document["outcome"] == "done"


@pytest.mark.postgres
def test_concurrent_writers_keep_the_ledger_gap_free(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    _setup(accord)
    run_ids = [
        accord.runtime.start(T, "order", input={"value": f"v{i}"}, subject=SUBJECT).run_id
        for i in range(24)
    ]
    instances = [make_accord(policies=None) for _ in range(3)]
    threads = [threading.Thread(target=i.runtime.drive) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for run_id in run_ids:
        accord.runtime.decide(T, run_id, "check", "approve", by="sam")
    threads = [threading.Thread(target=i.runtime.drive) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(accord.runtime.get(T, r).status == "completed" for r in run_ids)
    accord.tree_head(fresh=True)
    report = accord.verify_ledger()
    assert report.ok, report.problems
    assert report.entries == accord.ledger.size("default")


def test_another_master_key_cannot_open_or_extend_a_subjects_entries(
    accord: Accord, database_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    from accord.errors import ConfigurationError
    from accord.service import Settings, build
    from tests.ledgers import MASTER_KEY, SIGNING_KEY

    _setup(accord)
    _order(accord)
    other = build(
        Settings(
            database_url=database_url,
            ledger_signing_key=SIGNING_KEY,
            ledger_master_key=MASTER_KEY,
            keys_dir=tmp_path / "elsewhere",
        ),
        capabilities=accord.capabilities,
        clock=clock,
    )
    try:
        with pytest.raises(ConfigurationError, match="wrapped by master key") as caught:
            other.ledger.entries("default", subject_id=SUBJECT)
        assert "ACCORD_LEDGER_MASTER_KEY" in (caught.value.hint or "")
        size = accord.ledger.size("default")
        runs_before = len(accord.runtime.list_runs(T, subject=SUBJECT))
        with pytest.raises(ConfigurationError):
            other.runtime.start(T, "order", input={"value": "v"}, subject=SUBJECT)
        assert accord.ledger.size("default") == size
        assert len(accord.runtime.list_runs(T, subject=SUBJECT)) == runs_before
    finally:
        other.close()
    assert accord.verify_ledger().ok


def test_every_entry_kind_round_trips_and_verifies(accord: Accord) -> None:
    from accord.audit import ENTRY_KINDS, Entry
    from accord.storage import HistoryEvent, NewDecision

    built: list[Entry] = [
        entries.run_transition(
            run_id="r1",
            subject_id="s1",
            seq=1,
            event=HistoryEvent("run.started"),
            at=1.5,
            worker=None,
            run_input={"big": 2**60},
        ),
        *entries.gateway_decision(
            NewDecision(
                "d1",
                "c.x",
                "executed",
                None,
                1.5,
                {"input_digest": "sha256:0"},
                run_id="r1",
                subject_id="s1",
            )
        ),
        entries.consent_change(
            event_id="e1",
            subject_id="s1",
            grant_id="g1",
            kind="granted",
            at=1.5,
            actor="a",
            detail={"purpose": "dpv:Marketing"},
        ),
        entries.policy_deploy(
            version=9,
            digest="sha256:1",
            source_name="p.cedar",
            actor="a",
            at=1.5,
            policy_ids=["p1"],
        ),
        entries.flag_change(
            change_id="f1",
            key="capability:c.x",
            value="false",
            previous=None,
            reason="r",
            actor="a",
            at=1.5,
        ),
        entries.journey_deploy(
            name="j", version=1, digest="sha256:2", source_name="j.yaml", actor="a", at=1.5
        ),
        entries.human_decision(
            signal_id="s",
            run_id="r1",
            subject_id="s1",
            block="b",
            payload={"decision": "override", "reason": "why"},
            at=1.5,
        ),
        entries.signal(
            signal_id="s2",
            run_id=None,
            subject_id=None,
            kind="event",
            name="paid",
            correlation_key="o-1",
            payload={"x": float("nan")},
            at=1.5,
        ),
        entries.agent_output(
            run_id="r1",
            subject_id="s1",
            block="triage",
            agent="triage",
            version=3,
            model="local:intent-v1",
            prompt_digest="sha256:3",
            confidence=0.875,
            band="confirm",
            output_digest="sha256:4",
            output={"intent": "refund"},
            at=1.5,
            detail={"arm": "candidate", "cost": 0.25, "tool_calls": []},
            prompt={"instructions": "Sort it.", "message": "refund please"},
        ),
        entries.agent_deploy(
            name="triage",
            version=3,
            digest="sha256:5",
            prompt_digest="6" * 64,
            models={"models/m.npz": "7" * 64},
            source_name="triage.yaml",
            actor="a",
            at=1.5,
        ),
        entries.agent_rollout(
            rollout_id="rol_1",
            agent="triage",
            change="rolled_back",
            state={"percent": 0.0, "status": "rolled_back"},
            reason="escalated more",
            actor="accord",
            at=1.5,
        ),
        entries.agent_assigned(
            run_id="r1",
            subject_id="s1",
            block="triage",
            rollout_id="rol_1",
            agent="triage",
            arm="candidate",
            version=3,
            bucket=42,
            percent=5.0,
            at=1.5,
        ),
        entries.compensation(
            run_id="r1",
            subject_id="s1",
            block="charge",
            capability="c.undo",
            decision_id="d2",
            outcome="compensated",
            at=1.5,
        ),
        entries.subject_event("subject.hold", subject_id="s1", actor="legal", at=1.5),
        entries.ledger_key(key_id="k", public_key="AAAA", previous=None, at=1.5),
        *(
            entries.review_event(
                kind,
                item_id="rev_1",
                run_id="r1",
                subject_id="s1",
                at=1.5,
                body={"by": "ann"},
                personal={"packet": {"reason": "why"}},
            )
            for kind in (
                "review.opened",
                "review.assigned",
                "review.escalated",
                "review.refused",
                "review.info",
            )
        ),
        entries.confirmation_answered(
            confirmation_id="cnf_1",
            run_id="r1",
            subject_id="s1",
            block="propose",
            answer="confirmed",
            channel="email",
            signal_id="s3",
            at=1.5,
        ),
        *(
            entries.identity_event(kind, at=1.5, subject_id="s1", body={"subject": "s1"})
            for kind in (
                "identity.resolved",
                "identity.candidate",
                "identity.merged",
                "identity.split",
                "context.recorded",
                "retention.applied",
            )
        ),
        entries.identity_event("identity.model", at=1.5, body={"version": 1}),
        entries.identity_event("retention.rule", at=1.5, body={"category": "pd:Purchase"}),
        entries.experiment_change(
            experiment="e",
            version=1,
            change="stopped",
            actor="accord",
            reason="guardrail breached",
            detail={"p_value": 1e-9, "assigned": {"a": 3}},
            at=1.5,
        ),
        entries.experiment_assigned(
            experiment="e", version=1, variant="a", subject_id="s1", at=1.5
        ),
        entries.offer_catalogue(catalogue="c", version=1, digest="sha256:0", actor="ann", at=1.5),
        *(
            entries.watch_event(
                kind,
                proposal_id="wp_1",
                at=1.5,
                body={"metric": "override_rate", "finding": {"p_value": 1e-12, "counts": [3, 40]}},
            )
            for kind in ("watch.proposed", "watch.decided")
        ),
    ]
    with accord.db.transaction() as connection:
        indexes = accord.ledger.append(connection, "default", built)
    read = {e.index: e for e in accord.ledger.entries("default") if e.index in indexes}
    for index, entry in zip(indexes, built, strict=True):
        assert read[index].kind == entry.kind and read[index].body == entry.body
    assert read[indexes[0]].personal["input"] == {"big": 2**60}
    assert {e.kind for e in built} >= set(ENTRY_KINDS) - {
        "subject.erased",
        "subject.erasure_refused",
        "subject.hold_released",
    }
    accord.tree_head(fresh=True)
    assert accord.verify_ledger().ok


def test_a_proof_costs_one_statement(accord: Accord) -> None:
    _setup(accord)
    _order(accord)
    head = accord.tree_head(fresh=True)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(accord.db.engine, "before_cursor_execute", count)
    try:
        accord.inclusion_proof(head.tree_size - 3, tree_size=head.tree_size)
        proof_reads = [s for s in statements if "ledger_nodes" in s]
        statements.clear()
        accord.consistency_proof(3, head.tree_size)
        consistency_reads = [s for s in statements if "ledger_nodes" in s]
    finally:
        sa.event.remove(accord.db.engine, "before_cursor_execute", count)
    assert len(proof_reads) == 1 and len(consistency_reads) == 1
