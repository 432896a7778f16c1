"""``accord demo``: the sample enterprise's journeys, end to end, on embedded SQLite."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from accord.cli._common import console, fail, handled, when
from accord.core import TenantId
from accord.journeys import load_journey_file
from accord.runtime import Runtime
from accord.service import Settings, build
from accord.storage import TERMINAL

TENANT = TenantId("default")
EXAMPLE_JOURNEYS = ("notify_customer.yaml", "refund_request.yaml")


def find_examples() -> Path:
    for candidate in (Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        if (candidate / "journeys" / EXAMPLE_JOURNEYS[0]).is_file():
            return candidate
    fail(
        "the examples/ directory was not found",
        hint="run the demo from the root of an Accord checkout",
    )


def run_demo(database: Path) -> None:
    examples = find_examples()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    console.rule("[bold]Accord demo[/bold]")
    console.print(f"Embedded mode: SQLite at {database} (WAL, synchronous=FULL), in-process worker")
    with handled(), build(Settings(database_url=url)) as accord:
        runtime = accord.runtime
        console.print("\n[bold]1. Deploy journeys[/bold] (linted first; versions are immutable)")
        for name in EXAMPLE_JOURNEYS:
            deployment = runtime.catalog.deploy(
                TENANT, load_journey_file(examples / "journeys" / name), deployed_by="demo"
            )
            console.print(f"   {deployment.name} v{deployment.version}  {deployment.digest[:19]}")

        console.print("\n[bold]2. Three customers ask for refunds[/bold]")
        orders = {"ord-0042": "small", "ord-0750": "needs a supervisor", "ord-2500": "large"}
        run_ids = {}
        for order, note in orders.items():
            result = runtime.start(
                TENANT,
                "refund_request",
                input={"order_id": order},
                subject=f"customer-of-{order}",
                idempotency_key=f"refund-{order}",
            )
            run_ids[order] = result.run_id
            console.print(f"   {order} ({note}) → run {result.run_id}")
        again = runtime.start(
            TENANT,
            "refund_request",
            input={"order_id": "ord-0042"},
            subject="customer-of-ord-0042",
            idempotency_key="refund-ord-0042",
        )
        console.print(
            f"   the same request again (same idempotency key) → run {again.run_id}, "
            f"created={again.created}"
        )
        runtime.drive()
        _status(runtime, run_ids, "3. The worker runs them until they wait")

        console.print("\n[bold]4. People decide[/bold]")
        runtime.decide(
            TENANT,
            run_ids["ord-0750"],
            "approval",
            "approve",
            by="sam.supervisor",
            reason="long-standing customer",
        )
        runtime.decide(
            TENANT,
            run_ids["ord-2500"],
            "approval",
            "reject",
            by="sam.supervisor",
            reason="item was used",
        )
        console.print("   ord-0750 approved by sam.supervisor; ord-2500 rejected")
        console.print(
            "   (the payment provider fails the first attempt of large refunds; "
            "the block retries with backoff and the same idempotency key)"
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            runtime.drive()
            views = [runtime.get(TENANT, r) for r in run_ids.values()]
            if all(v.status in TERMINAL for v in views):
                break
            time.sleep(0.2)
        _status(runtime, run_ids, "5. Durable timers fire and the runs finish")

        focus = run_ids["ord-0750"]
        console.print(f"\n[bold]6. History of run {focus}[/bold] (one row per recorded event)")
        table = Table("seq", "at", "event", "block", "visit", "try")
        for entry in runtime.history(TENANT, focus):
            table.add_row(
                str(entry.seq),
                when(entry.at)[11:],
                entry.kind,
                entry.block or "",
                str(entry.visit or ""),
                str(entry.attempt or ""),
            )
        console.print(table)
        calls = accord.capabilities.get("payments.refund")
        console.print(
            f"\nCapabilities called through the gateway: {len(accord.capabilities)} "
            f"registered (e.g. {calls.name}, side effect: {calls.side_effect})."
        )
        console.print(
            "\nExplore this database:\n"
            f"   accord run list --database {url}\n"
            f"   accord run history {focus} --database {url}\n"
        )


def _status(runtime: Runtime, run_ids: dict[str, str], title: str) -> None:
    console.print(f"\n[bold]{title}[/bold]")
    table = Table("order", "run", "status", "outcome", "where", "transitions")
    for order, run_id in run_ids.items():
        view = runtime.get(TENANT, run_id)
        where = ", ".join(f"{p.block} ({p.waiting_for or p.status})" for p in view.positions) or (
            view.error or {}
        ).get("message", "")
        table.add_row(order, run_id, view.status, view.outcome or "", where, str(view.transitions))
    console.print(table)
