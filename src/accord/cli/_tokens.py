"""``accord token``: development bearer tokens for the API and the console."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from accord.api import ROLES, issue_token
from accord.cli._common import console, handled
from accord.core import parse_duration
from accord.errors import InputError
from accord.service import Settings

app = typer.Typer(help="Bearer tokens for the API, signed by the local development key.")


@app.command("create")
def create(
    role: Annotated[
        list[str], typer.Option("--role", help=f"a role, repeatable: {', '.join(ROLES)}")
    ],
    tenant: Annotated[str | None, typer.Option(help="the tenant (default: ACCORD_TENANT)")] = None,
    subject: Annotated[
        str, typer.Option(help="who the token speaks for, as staff records know them")
    ] = "dev",
    name: Annotated[str | None, typer.Option(help="a display name")] = None,
    ttl: Annotated[str, typer.Option(help="lifetime, e.g. 8h, 30m, 7d")] = "8h",
) -> None:
    """Print a token for 'Authorization: Bearer …' (or the console's sign-in)."""
    with handled():
        settings = Settings()
        try:
            lifetime = parse_duration(ttl)
        except ValueError as exc:
            raise InputError(f"--ttl {ttl!r} is not a duration", hint="e.g. 8h, 30m, 7d") from exc
        token = issue_token(
            settings.resolved_keys_dir(),
            subject=subject,
            tenant=tenant or settings.tenant,
            roles=role,
            issuer=settings.api_issuer,
            audience=settings.api_audience,
            ttl_seconds=lifetime,
            now=time.time(),
            name=name,
            roles_claim=settings.api_roles_claim,
            tenant_claim=settings.api_tenant_claim,
        )
    console.print(token, soft_wrap=True, markup=False)
