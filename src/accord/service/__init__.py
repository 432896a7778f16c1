"""Settings and the composition root that the CLI, API and console share."""

from accord.service._conversations import (
    Conversation,
    ConversationNotFound,
    Conversations,
    Message,
)
from accord.service._direct import DirectResult
from accord.service._events import EventView
from accord.service._root import Accord, build, load_capabilities
from accord.service._settings import Settings

__all__ = [
    "Accord",
    "Conversation",
    "ConversationNotFound",
    "Conversations",
    "DirectResult",
    "EventView",
    "Message",
    "Settings",
    "build",
    "load_capabilities",
]
