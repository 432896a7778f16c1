"""``accord demo``: the sample enterprise's journeys, end to end, on embedded SQLite."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.table import Table

from accord.api import issue_token
from accord.audit import render_explanation
from accord.audit.verifier import verify_bundle
from accord.cli._common import console, fail, handled
from accord.cli._serve import serve_until_stopped
from accord.core import TenantId
from accord.errors import ReviewForbidden
from accord.journeys import load_journey_file
from accord.reviews import Queue, item_packet
from accord.runtime import Runtime
from accord.service import Accord, Settings, build
from accord.storage import TERMINAL

TENANT = TenantId("default")
EXAMPLE_JOURNEYS = ("notify_customer.yaml", "refund_request.yaml")
POLICY_FILE = "retail.cedar"
SCHEMA_FILE = "accord.cedarschema"
ORDERS_PURPOSE = "dpv:CustomerOrderManagement"
MESSAGES_PURPOSE = "dpv:CommunicationManagement"


def find_examples() -> Path:
    for candidate in (Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        if (candidate / "journeys" / EXAMPLE_JOURNEYS[0]).is_file():
            return candidate
    fail(
        "the examples/ directory was not found",
        hint="run the demo from the root of an Accord checkout",
    )


def _decide_in_inbox(accord: Accord, run_ids: dict[str, str]) -> None:
    """Staff work the review inbox: the handoff packet, maker-checker, decisions."""
    accord.put_person("sam.supervisor", roles=["supervisor"], skills=["refunds"], actor="demo")
    accord.put_person("kim.senior", roles=["senior"], skills=["refunds"], actor="demo")
    accord.put_queue(
        Queue("supervisor", roles=("supervisor",), sla=4 * 3600, escalate_to="senior_support"),
        actor="demo",
    )
    accord.put_queue(Queue("senior_support", roles=("senior",), sla=8 * 3600), actor="demo")
    items = accord.review_items()
    for item in items:
        packet = item_packet(item)
        console.print(
            f"   inbox: {item.item_id} in {item.queue} ({item.kind}); recommends "
            f"{packet.recommendation.decision} ({packet.recommendation.source.key})"
        )
    approval = next(i for i in items if i.run_id == run_ids["ord-0750"])
    packet = item_packet(approval)
    verified = ", ".join(f"{v.block} by {v.system}" for v in packet.verified)
    console.print(
        f"   handoff packet v{packet.version}: verified {verified}; remaining "
        f"{', '.join(packet.remaining[:3])}…; policy {', '.join(packet.policy.determining)}"
    )
    try:
        accord.decide_review(approval.item_id, "kim.senior", "approve", reason="quick one")
    except ReviewForbidden as exc:
        console.print(f"   kim.senior tries to approve: refused ({exc.message.split(': ', 1)[1]})")
    accord.decide_review(
        approval.item_id, "sam.supervisor", "approve", reason="long-standing customer"
    )
    escalation = next(i for i in items if i.run_id == run_ids["ord-2500"])
    accord.decide_review(
        escalation.item_id,
        "kim.senior",
        "reject",
        reason="refund refused by policy; customer offered a repair",
    )
    console.print(
        "   ord-0750 approved by sam.supervisor; ord-2500's escalation closed by kim.senior"
    )


def run_demo(
    database: Path, *, serve: bool = False, host: str = "127.0.0.1", port: int = 8080
) -> None:
    examples = find_examples()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    console.rule("[bold]Accord demo[/bold]")
    console.print(f"Embedded mode: SQLite at {database} (WAL, synchronous=FULL), in-process worker")
    with handled(), build(Settings(database_url=url)) as accord:
        runtime = accord.runtime
        console.print("\n[bold]1. Deploy journeys and governance[/bold]")
        for name in EXAMPLE_JOURNEYS:
            deployment = runtime.catalog.deploy(
                TENANT, load_journey_file(examples / "journeys" / name), deployed_by="demo"
            )
            console.print(
                f"   journey {deployment.name} v{deployment.version}  {deployment.digest[:19]}"
            )
        policies = examples / "policies"
        bundle = accord.policies.deploy(
            TENANT,
            (policies / POLICY_FILE).read_text(encoding="utf-8"),
            (policies / SCHEMA_FILE).read_text(encoding="utf-8"),
            source_name=f"examples/policies/{POLICY_FILE}",
            actor="demo",
        )
        console.print(
            f"   policy bundle v{bundle.version}: {len(bundle.compiled_policies)} Cedar policies, "
            "validated against their schema"
        )
        accord.consent.set_basis(
            TENANT,
            ORDERS_PURPOSE,
            "contract",
            categories=["pd:Purchase", "pd:PaymentCard"],
            description="refunds are part of the sales contract",
            actor="dpo",
        )
        console.print(
            f"   lawful basis: {ORDERS_PURPOSE} under contract (pd:Purchase, pd:PaymentCard)"
        )
        consented = accord.consent.grant(
            TENANT,
            "customer-of-ord-0042",
            purpose=MESSAGES_PURPOSE,
            categories=["pd:EmailAddress"],
            channel="web",
            notice_version="2026-10",
            actor="customer-of-ord-0042",
        )
        console.print(
            f"   consent: customer-of-ord-0042 agreed to {MESSAGES_PURPOSE} by e-mail "
            f"(receipt {consented.grant_id}); the other customers did not"
        )
        accord.set_flag(
            "capability:inventory.restock",
            False,
            actor="ops",
            reason="warehouse system in maintenance",
        )
        console.print("   kill switch: capability:inventory.restock is off (maintenance)")

        console.print("\n[bold]2. Three customers ask for refunds[/bold]")
        orders = {
            "ord-0042": "42 EUR: permitted",
            "ord-0750": "750 EUR: a supervisor must approve",
            "ord-2500": "2500 EUR: high risk, forbidden",
        }
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
        _status(
            runtime, run_ids, "3. The gateway decides: executed, held, awaiting approval, refused"
        )

        console.print("\n[bold]4. People decide, operations switch restocking back on[/bold]")
        _decide_in_inbox(accord, run_ids)
        accord.set_flag(
            "capability:inventory.restock", True, actor="ops", reason="maintenance finished"
        )
        console.print(
            "   restocking is back on and the held run continues at once\n"
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
        for order, run_id in run_ids.items():
            told = runtime.get(TENANT, run_id).steps.get("tell_customer")
            if isinstance(told, dict):
                sent = told.get("output") or {}
                why = f" ({sent['reason']}: no consent to e-mail)" if "reason" in sent else ""
                console.print(f"   {order}: customer message {told.get('outcome')}{why}")

        focus = run_ids["ord-0750"]
        console.print(f"\n[bold]6. Why? The gateway's decisions for run {focus}[/bold]")
        table = Table("block", "capability", "outcome", "lawful basis", "policy")
        for record in runtime.decisions(TENANT, focus):
            basis = record.record.get("lawful_basis") or {}
            policy = record.record.get("policy") or {}
            table.add_row(
                record.block or "",
                record.capability,
                record.outcome + (f" ({record.reason})" if record.reason else ""),
                str(basis.get("basis") or ("not needed" if not basis.get("required") else "-")),
                f"v{policy.get('bundle_version')} " + ", ".join(policy.get("determining") or [])
                if policy
                else "",
            )
        console.print(table)
        console.print(
            f"\nCapabilities behind the gateway: {len(accord.capabilities)} registered; "
            "every call above passed kill switch, lawful basis and policy first."
        )
        _evidence(accord, focus, database.parent / "demo-evidence.json")
        console.print(
            "\nExplore this database:\n"
            f"   accord run list --database {url}\n"
            f"   accord run history {focus} --database {url}\n"
            f"   accord run decisions {focus} --database {url}\n"
            f"   accord consent show customer-of-ord-0042 --database {url}\n"
            f"   accord flag history --database {url}\n"
            f"   accord explain {focus} --database {url}\n"
            f"   accord audit replay {focus} --database {url}\n"
            f"   accord audit verify --database {url}\n"
        )
        waiting = _leave_work_in_the_inbox(accord)
        _console_links(accord, host, port, waiting, served=serve)
        if serve:
            serve_until_stopped(accord, host=host, port=port)


def _leave_work_in_the_inbox(accord: Accord) -> str:
    """One more refund large enough to need a supervisor: it waits in the inbox."""
    result = accord.runtime.start(
        TENANT,
        "refund_request",
        input={"order_id": "ord-0800"},
        subject="customer-of-ord-0800",
        idempotency_key="refund-ord-0800",
    )
    accord.runtime.drive()
    return result.run_id


def _console_links(accord: Accord, host: str, port: int, run_id: str, *, served: bool) -> None:
    keys = accord.settings.resolved_keys_dir()
    settings = accord.settings
    now = time.time()

    def token(subject: str, role: str) -> str:
        return issue_token(
            keys,
            subject=subject,
            tenant=TENANT,
            roles=[role],
            now=now,
            issuer=settings.api_issuer,
            audience=settings.api_audience,
            roles_claim=settings.api_roles_claim,
            tenant_claim=settings.api_tenant_claim,
        )

    base = f"http://{host}:{port}"
    open_items = accord.review_items(run_id=run_id)
    console.print("\n[bold]8. The console and the API[/bold]")
    console.print(
        f"   ord-0800 (800 EUR) waits for a supervisor: {len(open_items)} item in the inbox"
    )
    console.print("   reviewer sam.supervisor (valid for 8 hours):", markup=False)
    console.print(
        f"   {base}/console/sign-in?next=/console/reviews&token="
        f"{token('sam.supervisor', 'supervisor')}",
        markup=False,
        soft_wrap=True,
    )
    console.print("   operator, for the dashboard and the API (Authorization: Bearer …):")
    console.print(f"   {token('demo.operator', 'operator')}", markup=False, soft_wrap=True)
    if served:
        console.print(f"   serving {base} (API /v1, console /console) until Ctrl-C", markup=False)
    else:
        console.print(
            f"   `accord serve --database {accord.settings.database_url}` serves them",
            markup=False,
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


def _evidence(accord: Accord, focus: str, bundle_path: Path) -> None:
    console.print("\n[bold]7. Evidence: the ledger proves it[/bold]")
    head = accord.tree_head(fresh=True)
    console.print(
        f"   signed tree head: {head.tree_size} entries, root {head.root_hash[:16]}…, "
        f"Ed25519 key {head.key_id}"
    )
    report = accord.verify_ledger()
    console.print(
        f"   audit verify: {'ok' if report.ok else 'FAILED'} ({report.entries} entries "
        f"recomputed, {report.heads} heads checked)"
    )
    console.print(f"   explain {focus}:")
    for line in render_explanation(accord.explain(focus)).splitlines()[1:]:
        console.print(f"     {line}", markup=False)
    replayed = accord.replay(focus)
    history = accord.runtime.history(TENANT, focus)
    console.print(
        f"   replay from the ledger alone: {len(replayed.history)} events, "
        f"{'equal to' if replayed.history == history else 'DIFFERENT FROM'} the run's history"
    )
    bundle = accord.export_evidence(run_id=focus)
    bundle_path.write_text(json.dumps(bundle, indent=1))
    console.print(f"   evidence bundle {bundle_path}: {verify_bundle(bundle)}")
    subject = "customer-of-ord-0042"
    erasure = accord.erase_subject(subject, actor="dpo", reason="erasure request (demo)")
    after = accord.verify_ledger()
    console.print(
        f"   {subject} erased (data key destroyed, {erasure.runs_scrubbed} runs scrubbed); "
        f"the ledger still verifies: {'ok' if after.ok else 'FAILED'}"
    )
