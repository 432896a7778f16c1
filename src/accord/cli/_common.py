"""What every command shares: building Accord from settings, printing, and turning errors into
messages that say what happened and what to do."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from accord.core import TenantId
from accord.errors import AccordError, InputError, JourneyInvalid
from accord.service import Accord, Settings, build

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


@contextmanager
def opened(database: str | None = None) -> Iterator[Accord]:
    """Accord built from settings (``--database`` overrides ``ACCORD_DATABASE_URL``)."""
    with handled():
        overrides: dict[str, Any] = {}
        if database:
            overrides["database_url"] = database
        settings = Settings(**overrides)
        instance = build(settings)
        instance.configure_logging()
    try:
        yield instance
    finally:
        instance.close()


def tenant_of(instance: Accord) -> TenantId:
    return TenantId(instance.settings.tenant)


def actor_or_user(given: str | None = None) -> str:
    """``given``, else the user name of whoever runs the command (``cli`` when there is none)."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


@contextmanager
def handled() -> Iterator[None]:
    try:
        yield
    except JourneyInvalid as exc:
        for diagnostic in exc.diagnostics:
            errors.print(diagnostic.render(), style="red", markup=False)
        raise typer.Exit(2) from exc
    except AccordError as exc:
        errors.print(f"error [{exc.code}]: {exc.message}", style="red", markup=False)
        if exc.hint:
            errors.print(f"  hint: {exc.hint}", markup=False)
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from exc


def fail(message: str, *, hint: str | None = None) -> NoReturn:
    errors.print(f"error: {message}", style="red", markup=False)
    if hint:
        errors.print(f"  hint: {hint}", markup=False)
    raise typer.Exit(2)


def parse_json_option(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"{option} is not valid JSON: {exc.msg} at column {exc.colno}",
            hint=f"""quote it for the shell, e.g. {option} '{{"order_id": "A-1"}}'""",
        )
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return str(value)


def drive_if_embedded(instance: Accord, then: Callable[[], T], *, wait: bool = True) -> T:
    """In embedded mode the CLI is the worker: advance runs until nothing is due and, with
    ``wait``, wait for timers that fall due within ``ACCORD_EMBEDDED_WAIT_SECONDS`` (retries,
    short waits)."""
    settings = instance.settings
    if settings.embedded_workers and instance.db.backend == "sqlite":
        runtime = instance.runtime
        tenant = TenantId(settings.tenant)
        deadline = time.monotonic() + (settings.embedded_wait_seconds if wait else 0.0)
        while True:
            runtime.drive()
            due = runtime.next_wake_at(tenant)
            if due is None:
                break
            delay = due - runtime.clock.now()
            if time.monotonic() + delay > deadline:
                break
            time.sleep(max(delay, 0.0))
    return then()
