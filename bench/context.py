"""Context reads: how long a purpose-bound read of a subject's context takes, side by side.

Peers, on the same database and the same subject (40 attributes and signals in 8 categories):

- ``store``: the context store's own query, no governance (the floor);
- ``gateway pass``: the read through a gateway session, as a journey's task makes it (kill
  switch, lawful basis, Cedar, projection, decision record built); its commit rides the run's
  transition, so it is not counted;
- ``audited read``: ``Accord.read_context``, a read outside any run, which also commits its
  decision record and ledger entry;
- ``ungoverned``: the same direct call on an Accord built without governance.

Run it with ``./run bench context [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.gateway import Executed, Invocation
from accord.identity import ContextItem, SourceRecord
from accord.service import Accord, Settings, build

TENANT = "default"
PURPOSE = "dpv:CustomerCare"
ALLOWED = ["pd:Name", "pd:EmailAddress", "pd:Purchase", "pd:Communication"]
PERMIT = '@id("permit-context")\npermit(principal, action, resource);\n'
SCHEMA = """namespace Accord {
  entity Service = { "role": String, "tier"?: String, "journey"?: String };
  entity Agent = { "role": String, "tier"?: String, "model"?: String };
  entity Subject = { "region"?: String, "tier"?: String };
  action "context.read", "identity.merge", "identity.keep_apart" appliesTo {
    principal: [Service, Agent], resource: [Subject],
    context: { "purpose"?: String, "journey"?: String, "channel"?: String, "time"?: Long,
               "side_effect"?: String, "region"?: String, "processing_region"?: String }
  };
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reads, for CI")
    parser.add_argument("--reads", type=int, default=None)
    args = parser.parse_args()
    reads = args.reads or (300 if args.quick else 3000)
    console = Console(width=int(os.environ.get("COLUMNS", "120")))
    with tempfile.TemporaryDirectory() as directory:
        rows = measure(Path(directory), reads)
    table = Table("peer", "reads", "p50 µs", "p99 µs", "reads/s", title="context reads (SQLite)")
    for name, samples in rows.items():
        table.add_row(
            name,
            str(len(samples)),
            f"{percentile(samples, 50):.0f}",
            f"{percentile(samples, 99):.0f}",
            f"{1e6 / statistics.fmean(samples):.0f}",
        )
    console.print(table)
    floor = percentile(rows["store"], 50)
    headline = {
        "bench": "context",
        "reads": reads,
        **{f"{k.replace(' ', '_')}_p50_us": round(percentile(v, 50), 1) for k, v in rows.items()},
        **{f"{k.replace(' ', '_')}_p99_us": round(percentile(v, 99), 1) for k, v in rows.items()},
        "gateway_pass_over_store": round(percentile(rows["gateway pass"], 50) / floor, 2),
        "audited_read_over_store": round(percentile(rows["audited read"], 50) / floor, 2),
    }
    print(json.dumps(headline))


def measure(directory: Path, reads: int) -> dict[str, list[float]]:
    governed = _accord(directory / "governed.db", governed=True, keys=directory / "keys")
    ungoverned = _accord(directory / "plain.db", governed=False, keys=directory / "keys2")
    try:
        subject = _seed(governed)
        plain_subject = _seed(ungoverned)
        tenant = TenantId(TENANT)

        def store() -> None:
            governed.context.read(TENANT, subject)

        def gateway_pass() -> None:
            session = governed.gateway.session(tenant, subject)
            call = CallContext(TENANT, "run_bench", "read", 1, 1, "key", subject, PURPOSE)
            outcome = session.invoke(
                Invocation(capability="context.read", payload={}, call=call),
                now=governed.runtime.clock.now(),
            )
            assert isinstance(outcome, Executed)

        def audited() -> None:
            result = governed.read_context(subject, purpose=PURPOSE)
            assert result.status == "executed"

        def plain() -> None:
            ungoverned.read_context(plain_subject, purpose=PURPOSE)

        peers: dict[str, Callable[[], None]] = {
            "store": store,
            "gateway pass": gateway_pass,
            "audited read": audited,
            "ungoverned": plain,
        }
        return {name: _time(peer, reads) for name, peer in peers.items()}
    finally:
        governed.close()
        ungoverned.close()


def _accord(path: Path, *, governed: bool, keys: Path) -> Accord:
    settings = Settings(database_url=f"sqlite:///{path}", keys_dir=keys)
    instance = build(settings, capabilities=CapabilityRegistry(), governed=governed)
    instance.policies.deploy(TENANT, PERMIT, SCHEMA, source_name="bench", actor="bench")
    instance.consent.set_basis(
        TenantId(TENANT), PURPOSE, "contract", categories=ALLOWED, actor="bench"
    )
    return instance


def _seed(instance: Accord) -> str:
    record = SourceRecord(
        "crm",
        "cus_1",
        {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+442079460001"},
    )
    subject = instance.resolve_identities([record]).resolutions[0].subject_id
    categories = [*ALLOWED, "pd:Location", "pd:Preference", "pd:TelephoneNumber", "acme:Loyalty"]
    items = [
        ContextItem(
            name=f"item{i}",
            value={"n": i, "note": "x" * 40},
            category=categories[i % len(categories)],
            source="orders",
            kind="signal" if i % 2 else "attribute",
        )
        for i in range(36)
    ]
    instance.context.record(TENANT, subject, items, by="bench")
    return subject


def _time(peer: Callable[[], None], reads: int) -> list[float]:
    for _ in range(min(50, reads)):
        peer()
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        peer()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


if __name__ == "__main__":
    main()
