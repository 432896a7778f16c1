"""Test doubles Accord ships for its own tests and for yours."""

from accord.testing._clock import FrozenClock, SequentialIds
from accord.testing._openai_server import (
    Exchange,
    Match,
    ReceivedMessage,
    ReceivedRequest,
    RecordedFault,
    RecordedModelServer,
    RecordedReply,
    RecordedToolCall,
    RecordedUsage,
    Recording,
)

__all__ = [
    "Exchange",
    "FrozenClock",
    "Match",
    "ReceivedMessage",
    "ReceivedRequest",
    "RecordedFault",
    "RecordedModelServer",
    "RecordedReply",
    "RecordedToolCall",
    "RecordedUsage",
    "Recording",
    "SequentialIds",
]
