"""Consent and lawful basis: DPV vocabulary, grants with receipts, configured bases, and the
in-memory check the gateway runs before every read of subject data and every action.

``ConsentLedger`` records and answers; ``ConsentLedger.snapshot`` reads what one subject's checks
need in one statement, and ``ConsentSnapshot.check`` decides without further I/O.
"""

from accord.consent._basis import (
    BASIS_TERMS,
    LAWFUL_BASES,
    BasisCheck,
    CheckReason,
    ConsentSnapshot,
    LawfulBasis,
    PurposeBasis,
    validate_basis,
)
from accord.consent._grants import ConsentEvent, ConsentEventKind, Grant, GrantStatus
from accord.consent._ledger import ConsentLedger, snapshots_from
from accord.consent._receipts import DEMO_CONTROLLER, RECEIPT_VERSION, Controller
from accord.consent._vocabulary import (
    CATEGORIES,
    PURPOSES,
    Term,
    close_matches,
    is_custom,
    is_sensitive,
    label_of,
    validate_categories,
    validate_purpose,
)

__all__ = [
    "BASIS_TERMS",
    "CATEGORIES",
    "DEMO_CONTROLLER",
    "LAWFUL_BASES",
    "PURPOSES",
    "RECEIPT_VERSION",
    "BasisCheck",
    "CheckReason",
    "ConsentEvent",
    "ConsentEventKind",
    "ConsentLedger",
    "ConsentSnapshot",
    "Controller",
    "Grant",
    "GrantStatus",
    "LawfulBasis",
    "PurposeBasis",
    "Term",
    "close_matches",
    "is_custom",
    "is_sensitive",
    "label_of",
    "snapshots_from",
    "validate_basis",
    "validate_categories",
    "validate_purpose",
]
