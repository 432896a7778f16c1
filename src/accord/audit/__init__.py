"""The tamper-evident ledger: entries, Merkle tree, signed heads, proofs, crypto-shredding,
verification, evidence bundles, case replay and explanations."""

from accord.audit import _entries as entries
from accord.audit._entries import ENTRY_KINDS, Entry, EntryKind, ReviewEventKind
from accord.audit._erasure import Erasure, Hold, erase_subject, place_hold, release_hold
from accord.audit._explain import ExplainedDecision, Explanation, explain_run
from accord.audit._explain import render as render_explanation
from accord.audit._export import export_bundle
from accord.audit._keys import Keyring, SigningKey
from accord.audit._ledger import (
    ConsistencyProof,
    InclusionProof,
    Ledger,
    LedgerEntry,
    SignedHead,
)
from accord.audit._replay import ReplayedDecision, ReplayedRun, replay_run
from accord.audit._shredding import ERASED, Erased
from accord.audit._verify import Problem, VerifyReport, verify_ledger

__all__ = [
    "ENTRY_KINDS",
    "ERASED",
    "ConsistencyProof",
    "Entry",
    "EntryKind",
    "Erased",
    "Erasure",
    "ExplainedDecision",
    "Explanation",
    "Hold",
    "InclusionProof",
    "Keyring",
    "Ledger",
    "LedgerEntry",
    "Problem",
    "ReplayedDecision",
    "ReplayedRun",
    "ReviewEventKind",
    "SignedHead",
    "SigningKey",
    "VerifyReport",
    "entries",
    "erase_subject",
    "explain_run",
    "export_bundle",
    "place_hold",
    "release_hold",
    "render_explanation",
    "replay_run",
    "verify_ledger",
]
