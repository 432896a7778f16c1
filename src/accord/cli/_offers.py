"""``accord offers``: deploy offer catalogues and see what each has learnt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from accord.cli._common import (
    actor_or_user,
    as_json,
    console,
    handled,
    opened,
    tenant_of,
    when,
)
from accord.offers import load_offer_catalogue

app = typer.Typer(
    help="Offer catalogues for next-best-action blocks: what may be offered, to whom, how often.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]


@app.command("deploy")
def deploy_command(
    file: Annotated[Path, typer.Argument(help="the catalogue (YAML)")],
    by: Annotated[
        str | None, typer.Option("--by", help="who deploys it (default: your user name)")
    ] = None,
    database: Database = None,
) -> None:
    """Deploy the catalogue ``file`` describes (checked first; errors name the field). Offer
    blocks choose from the newest version from now on."""
    with opened(database) as accord, handled():
        spec = load_offer_catalogue(file)
        version = accord.deploy_offers(spec, by=actor_or_user(by))
        console.print(
            f"offer catalogue {spec.catalogue} v{version}: {len(spec.offers)} offers, "
            f"ranked by {spec.ranking.method}",
            markup=False,
        )


@app.command("list")
def list_command(
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    database: Database = None,
) -> None:
    """Each catalogue's newest version, with every offer's recorded outcomes."""
    with opened(database) as accord, handled():
        found = accord.offers.deployed(tenant_of(accord))
        if json:
            console.print(as_json(found), markup=False, soft_wrap=True)
            return
        table = Table("catalogue", "version", "ranking", "offer", "accepted", "sensitive")
        for row in found:
            for i, offer in enumerate(row["offers"]):
                table.add_row(
                    row["catalogue"] if i == 0 else "",
                    str(row["version"]) if i == 0 else "",
                    row["method"] if i == 0 else "",
                    offer["offer"],
                    f"{offer['accepted']}/{offer['trials']}",
                    "yes" if offer["sensitive"] else "",
                )
            console.print(f"{row['catalogue']}: deployed {when(row['deployed_at'])[:19]}")
        console.print(table)
