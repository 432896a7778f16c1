"""The HTTP surface: inbound events, metrics and health (the full API builds on it)."""
