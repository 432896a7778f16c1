from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str | float | int) -> float:
    """Parse ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"7d"`` or a number of seconds.

    Raises:
        ValueError: with a message naming the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration such as '30s', got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    cleaned = text.strip().replace(" ", "")
    pos = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(cleaned) or not cleaned:
        raise ValueError(
            f"not a duration: {text!r}; use a number with a unit, e.g. '250ms', '30s', '5m', "
            "'2h', '7d' or '1h30m'"
        )
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly: ``0.25`` → ``250ms``, ``90`` → ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    parts = []
    remaining = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts) or "0s"
