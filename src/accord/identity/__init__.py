"""Identity resolution: which source records are the same person.

Records are normalised onto canonical fields, blocking keys propose the pairs worth comparing,
and a Fellegi-Sunter model, estimated from unlabelled records by EM, weighs each pair's field
agreements into a match probability and a decision (link, possible, none).
"""

from accord.identity._blocking import (
    DEFAULT_BLOCKING,
    MAX_KEY_LENGTH,
    Blocking,
    BlockingRule,
    KeyEncoding,
    KeyPart,
    candidate_pairs,
    soundex,
)
from accord.identity._comparison import (
    DEFAULT_COMPARISONS,
    Comparison,
    ComparisonKind,
    compare,
    compare_all,
)
from accord.identity._context import ContextItem, ContextStore
from accord.identity._evaluation import (
    LinkageReport,
    evaluate_deduplication,
    evaluate_linkage,
    febrl_reports,
    load_febrl,
    read_true_pairs,
)
from accord.identity._fellegi_sunter import (
    LINK_THRESHOLD,
    REVIEW_THRESHOLD,
    Decision,
    FieldScore,
    MatchModel,
    MatchScore,
    default_model,
    estimate,
)
from accord.identity._normalise import IDENTITY_FIELDS, IdentityRecord, normalise
from accord.identity._resolver import (
    FIELD_CATEGORIES,
    Resolution,
    Resolver,
    ResolveReport,
    SourceRecord,
    SubjectView,
)
from accord.identity._retention import Retention, RetentionReport, RetentionRule

__all__ = [
    "DEFAULT_BLOCKING",
    "DEFAULT_COMPARISONS",
    "FIELD_CATEGORIES",
    "IDENTITY_FIELDS",
    "LINK_THRESHOLD",
    "MAX_KEY_LENGTH",
    "REVIEW_THRESHOLD",
    "Blocking",
    "BlockingRule",
    "Comparison",
    "ComparisonKind",
    "ContextItem",
    "ContextStore",
    "Decision",
    "FieldScore",
    "IdentityRecord",
    "KeyEncoding",
    "KeyPart",
    "LinkageReport",
    "MatchModel",
    "MatchScore",
    "Resolution",
    "ResolveReport",
    "Resolver",
    "Retention",
    "RetentionReport",
    "RetentionRule",
    "SourceRecord",
    "SubjectView",
    "candidate_pairs",
    "compare",
    "compare_all",
    "default_model",
    "estimate",
    "evaluate_deduplication",
    "evaluate_linkage",
    "febrl_reports",
    "load_febrl",
    "normalise",
    "read_true_pairs",
    "soundex",
]
