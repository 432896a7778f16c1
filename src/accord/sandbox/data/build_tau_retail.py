"""Build ``tau_retail.json.gz``, the retail records the sandbox orders service is seeded from.

The records come from tau-bench (MIT licence, Copyright (c) 2024 Sierra; see NOTICE): all 50
products with their variants, the first 200 users by sorted ``user_id`` and every order of those
users. Values are copied unchanged; only the selection is ours. The output is deterministic (sorted
keys, no timestamp in the gzip header), so rebuilding from the same source gives the same bytes.

Run it from the repository root::

    .venv/bin/python src/accord/sandbox/data/build_tau_retail.py [--source DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

USER_COUNT = 200
HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[4] / "shared" / "datasets" / "tau_bench" / "retail" / "data"
DEFAULT_OUTPUT = HERE / "tau_retail.json.gz"
UPSTREAM = {
    "project": "tau-bench",
    "repository": "https://github.com/sierra-research/tau-bench",
    "commit": "59a200c6d575d595120f1cb70fea53cef0632f6b",
    "licence": "MIT, Copyright (c) 2024 Sierra",
}


def select(source: Path) -> dict[str, Any]:
    """The subset: every product, the first users by sorted id, and all of their orders."""
    users = _read(source / "users.json")
    orders = _read(source / "orders.json")
    products = _read(source / "products.json")
    chosen = {user_id: users[user_id] for user_id in sorted(users)[:USER_COUNT]}
    their_orders = {
        order_id: orders[order_id] for user in chosen.values() for order_id in user["orders"]
    }
    missing = [o for o in their_orders.values() if o["user_id"] not in chosen]
    if missing:
        raise SystemExit(f"order {missing[0]['order_id']} belongs to a user outside the subset")
    return {"upstream": UPSTREAM, "products": products, "users": chosen, "orders": their_orders}


def write(subset: dict[str, Any], output: Path) -> None:
    """Write ``subset`` as compact, key-sorted JSON in a gzip file without a timestamp."""
    text = json.dumps(subset, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with (
        output.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
    ):
        gz.write(text.encode())


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"{path} not found; pass --source with the tau-bench retail data folder")
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="tau-bench retail data")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="gzip file to write")
    arguments = parser.parse_args()
    subset = select(arguments.source)
    write(subset, arguments.output)
    print(
        f"wrote {arguments.output}: {len(subset['products'])} products, "
        f"{len(subset['users'])} users, {len(subset['orders'])} orders"
    )


if __name__ == "__main__":
    main()
