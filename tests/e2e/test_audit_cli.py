"""``accord audit``, ``accord explain`` and ``accord subject`` as real processes on the demo's
database: verify (and catch a tampered entry), explain, replay, proofs, export and the standalone
verifier, erasure under and after a legal hold, key rotation."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import ROOT, accord


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's database, built once for this module's tests (each works on a copy)."""
    folder = tmp_path_factory.mktemp("demo")
    result = accord("demo", "--exit", "--database", str(folder / "demo.db"), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return folder / "demo.db"


@pytest.fixture
def db(demo_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "demo.db"
    shutil.copy(demo_db, copy)
    shutil.copytree(demo_db.parent / "keys", tmp_path / "keys")
    return copy


def _run_id(db: Path, cwd: Path) -> str:
    listed = accord("run", "list", "--json", cwd=cwd, database=db)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    return next(r["run_id"] for r in runs if r["outcome"] == "refunded")


def test_verify_passes_and_names_the_tampered_entry(db: Path, tmp_path: Path) -> None:
    ok = accord("audit", "verify", cwd=tmp_path, database=db)
    assert ok.returncode == 0, ok.stderr
    assert "ledger verified" in ok.stdout
    with sqlite3.connect(db) as connection:
        (entry,) = connection.execute("SELECT entry FROM ledger_entries WHERE idx = 57").fetchone()
        changed = entry.replace(b'"v":1', b'"v":2')
        assert changed != entry
        connection.execute("UPDATE ledger_entries SET entry = ? WHERE idx = 57", (changed,))
    bad = accord("audit", "verify", cwd=tmp_path, database=db)
    assert bad.returncode == 1
    assert "ledger verification FAILED at entry 57" in bad.stderr
    report = json.loads(accord("audit", "verify", "--json", cwd=tmp_path, database=db).stdout)
    assert report["ok"] is False and report["first_problem"]["index"] == 57


def test_explain_and_replay_tell_the_runs_story(db: Path, tmp_path: Path) -> None:
    run_id = _run_id(db, tmp_path)
    story = accord("explain", run_id, cwd=tmp_path, database=db)
    assert story.returncode == 0, story.stderr
    assert "[gateway]" in story.stdout and "policy bundle v1" in story.stdout
    assert "(ledger #" in story.stdout
    document = json.loads(accord("explain", run_id, "--json", cwd=tmp_path, database=db).stdout)
    assert document["outcome"] == "refunded" and document["decisions"]
    replay = accord("audit", "replay", run_id, "--json", cwd=tmp_path, database=db)
    history = accord("run", "history", run_id, "--json", cwd=tmp_path, database=db)
    assert replay.returncode == 0 and history.returncode == 0
    assert [h["kind"] for h in json.loads(replay.stdout)["history"]] == [
        h["kind"] for h in json.loads(history.stdout)
    ]
    missing = accord("explain", "run_nope", cwd=tmp_path, database=db)
    assert missing.returncode == 2 and "holds no entries for run 'run_nope'" in missing.stderr


def test_an_exported_bundle_checks_out_with_the_standalone_verifier(
    db: Path, tmp_path: Path
) -> None:
    run_id = _run_id(db, tmp_path)
    bundle = tmp_path / "case.json"
    exported = accord(
        "audit", "export", "--run", run_id, "-o", str(bundle), cwd=tmp_path, database=db
    )
    assert exported.returncode == 0, exported.stderr
    verifier = tmp_path / "verifier.py"
    shutil.copy(ROOT / "src" / "accord" / "audit" / "verifier.py", verifier)
    checked = subprocess.run(
        [sys.executable, "-I", str(verifier), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stderr
    assert "OK:" in checked.stdout and "keys taken from the bundle" in checked.stdout
    again = accord("audit", "check-bundle", str(bundle), cwd=tmp_path)
    assert again.returncode == 0 and "bundle verified" in again.stdout
    data = json.loads(bundle.read_text())
    data["tree_head"]["tree_size"] += 1
    bundle.write_text(json.dumps(data))
    rejected = accord("audit", "check-bundle", str(bundle), cwd=tmp_path)
    assert rejected.returncode == 1 and "bundle REJECTED" in rejected.stderr
    nothing = accord("audit", "export", "-o", str(bundle), cwd=tmp_path, database=db)
    assert nothing.returncode == 2 and "say which entries to export" in nothing.stderr


def test_proofs_heads_and_key_rotation(db: Path, tmp_path: Path) -> None:
    head = json.loads(accord("audit", "head", cwd=tmp_path, database=db).stdout)
    proof = json.loads(accord("audit", "proof", "--index", "3", cwd=tmp_path, database=db).stdout)
    assert proof["tree_size"] == head["tree_size"] and proof["path"]
    rotated = accord("audit", "rotate-key", cwd=tmp_path, database=db)
    assert rotated.returncode == 0, rotated.stderr
    new_head = json.loads(accord("audit", "head", cwd=tmp_path, database=db).stdout)
    assert new_head["key_id"] != head["key_id"]
    consistency = accord(
        "audit", "proof", "--from-size", str(head["tree_size"]), cwd=tmp_path, database=db
    )
    assert json.loads(consistency.stdout)["size2"] == new_head["tree_size"]
    assert accord("audit", "verify", cwd=tmp_path, database=db).returncode == 0
    both = accord("audit", "proof", cwd=tmp_path, database=db)
    assert both.returncode == 2 and "--index" in both.stderr


def test_a_legal_hold_blocks_erasure_until_released(db: Path, tmp_path: Path) -> None:
    listed = json.loads(accord("run", "list", "--json", cwd=tmp_path, database=db).stdout)
    subject = next(r["subject_id"] for r in listed if r["outcome"] == "refunded")
    held = accord(
        "subject",
        "hold",
        subject,
        "--by",
        "legal",
        "--reason",
        "litigation",
        cwd=tmp_path,
        database=db,
    )
    assert held.returncode == 0, held.stderr
    refused = accord(
        "subject", "erase", subject, "--by", "dpo", "--reason", "request", cwd=tmp_path, database=db
    )
    assert refused.returncode == 2
    assert "legal hold" in refused.stderr and "release the hold first" in refused.stderr
    shown = json.loads(
        accord("subject", "show", subject, "--json", cwd=tmp_path, database=db).stdout
    )
    assert shown["key"] == "active" and shown["hold"]["placed_by"] == "legal"
    released = accord(
        "subject",
        "release",
        subject,
        "--by",
        "legal",
        "--reason",
        "closed",
        cwd=tmp_path,
        database=db,
    )
    assert released.returncode == 0
    erased = accord(
        "subject", "erase", subject, "--by", "dpo", "--reason", "request", cwd=tmp_path, database=db
    )
    assert erased.returncode == 0, erased.stderr
    assert "data key destroyed" in erased.stdout
    assert accord("audit", "verify", cwd=tmp_path, database=db).returncode == 0
    kinds = json.loads(
        accord("audit", "entries", "--subject", subject, "--json", cwd=tmp_path, database=db).stdout
    )
    assert [e["entry"]["kind"] for e in kinds][-4:] == [
        "subject.hold",
        "subject.erasure_refused",
        "subject.hold_released",
        "subject.erased",
    ]
    no_reason = accord(
        "subject", "erase", "other", "--by", "dpo", "--reason", " ", cwd=tmp_path, database=db
    )
    assert no_reason.returncode == 2 and "give a reason" in no_reason.stderr
