"""The orders service's changes to orders, over real HTTP, on the full tau-bench retail data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.errors import ConfigurationError
from accord.sandbox import SandboxEnterprise

DATA = Path(__file__).parents[3] / "shared" / "datasets" / "tau_bench" / "retail" / "data"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no tau-bench retail data at {DATA}")


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    directory = tmp_path_factory.mktemp("orders")
    with (
        SandboxEnterprise(directory, services=["orders"], retail_data=DATA) as enterprise,
        httpx.Client(base_url=enterprise.url("orders")) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def fresh(orders: httpx.Client) -> None:
    orders.post("/_sandbox/reset").raise_for_status()


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def order(client: httpx.Client, order_id: str) -> dict[str, Any]:
    response = client.get(f"/orders/{order_id.lstrip('#')}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def methods(client: httpx.Client, user_id: str) -> dict[str, Any]:
    user = client.get(f"/users/{user_id}").json()
    return {m["id"]: m for m in user["payment_methods"]}


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["code"])


# juan_garcia_9528 pays #W1013897 (pending) with a gift card holding 24.00; its first item
# (8293778132, 100.62) has an available variant 9647374798 (109.58) and an unavailable one.
PENDING = "W1013897"
GIFT_CARD = "gift_card_6369065"
ITEM, BETTER, UNAVAILABLE = "8293778132", "9647374798", "6454334990"
# omar_anderson_3203's #W6067464 is delivered, paid with credit_card_4190576.
DELIVERED = "W6067464"


def test_the_full_data_is_seeded_and_users_are_found_by_name_and_zip(
    orders: httpx.Client,
) -> None:
    assert len(orders.get("/products").json()["products"]) == len(raw("products"))
    found = orders.get(
        "/users/search-by-name",
        params={"first_name": "JUAN", "last_name": "garcia", "zip": "75253"},
    )
    assert found.status_code == 200 and found.json()["user_id"] == "juan_garcia_9528"
    missing = orders.get(
        "/users/search-by-name", params={"first_name": "Juan", "last_name": "Garcia", "zip": "1"}
    )
    assert problem(missing) == (404, "user_not_found")


def test_modifying_items_swaps_variants_settles_the_difference_and_is_final(
    orders: httpx.Client,
) -> None:
    body = {"item_ids": [ITEM], "new_item_ids": [BETTER], "payment_method_id": GIFT_CARD}
    response = orders.post(f"/orders/{PENDING}/items", json=body, headers={"Idempotency-Key": "m1"})
    assert response.status_code == 200, response.text
    modified = order(orders, PENDING)
    assert modified["status"] == "pending (item modified)"
    assert modified["items"][0]["item_id"] == BETTER and modified["items"][0]["price"] == 109.58
    assert modified["payment_history"][-1] == {
        "transaction_type": "payment",
        "amount": 8.96,
        "payment_method_id": GIFT_CARD,
    }
    assert methods(orders, "juan_garcia_9528")[GIFT_CARD]["balance"] == 15.04
    replay = orders.post(f"/orders/{PENDING}/items", json=body, headers={"Idempotency-Key": "m1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert methods(orders, "juan_garcia_9528")[GIFT_CARD]["balance"] == 15.04
    again = {"item_ids": [BETTER], "new_item_ids": [ITEM], "payment_method_id": GIFT_CARD}
    assert problem(orders.post(f"/orders/{PENDING}/items", json=again)) == (
        409,
        "order_items_modified",
    )
    cancel = orders.post(f"/orders/{PENDING}/cancel", json={"reason": "no longer needed"})
    assert problem(cancel) == (409, "order_not_pending")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"item_ids": [ITEM], "new_item_ids": [UNAVAILABLE]}, (409, "item_unavailable")),
        ({"item_ids": [ITEM], "new_item_ids": ["8917609800"]}, (422, "item_not_same_product")),
        ({"item_ids": ["8917609800"], "new_item_ids": [BETTER]}, (422, "item_not_in_order")),
        ({"item_ids": [ITEM], "new_item_ids": [BETTER, BETTER]}, (422, "item_count_mismatch")),
    ],
    ids=["unavailable", "other-product", "not-in-order", "count-mismatch"],
)
def test_an_item_change_the_shop_does_not_allow_is_refused_and_changes_nothing(
    orders: httpx.Client, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    before = order(orders, PENDING)
    response = orders.post(
        f"/orders/{PENDING}/items", json={**body, "payment_method_id": GIFT_CARD}
    )
    assert problem(response) == expected
    assert order(orders, PENDING) == before
    assert orders.get("/_sandbox/effects").json() == []


def test_a_gift_card_pays_only_what_it_holds(orders: httpx.Client) -> None:
    users = raw("users")
    for order_id, record in sorted(raw("orders").items()):  # noqa: B007 - the loop finds order_id
        [paid, *rest] = record["payment_history"]
        short = [
            method_id
            for method_id, method in sorted(users[record["user_id"]]["payment_methods"].items())
            if method.get("source") == "gift_card"
            and method["balance"] < paid["amount"]
            and method_id != paid["payment_method_id"]
        ]
        if record["status"] == "pending" and not rest and short:
            break
    else:
        pytest.skip("no pending order whose user has a gift card too small for it")
    before = order(orders, order_id)
    response = orders.post(f"/orders/{order_id[1:]}/payment", json={"payment_method_id": short[0]})
    assert problem(response) == (409, "insufficient_balance")
    assert order(orders, order_id) == before


def test_the_address_and_payment_method_of_a_pending_order_change(
    orders: httpx.Client,
) -> None:
    address = {
        "address1": "1 Main St",
        "address2": "",
        "city": "Austin",
        "state": "TX",
        "country": "USA",
        "zip": "78701",
    }
    assert orders.post(f"/orders/{PENDING}/address", json=address).status_code == 200
    assert order(orders, PENDING)["address"] == address
    delivered = orders.post(f"/orders/{DELIVERED}/address", json=address)
    assert problem(delivered) == (409, "order_not_pending")
    same = orders.post(f"/orders/{PENDING}/payment", json={"payment_method_id": GIFT_CARD})
    assert problem(same) == (422, "payment_method_unchanged")
    stranger = orders.post(
        f"/orders/{PENDING}/payment", json={"payment_method_id": "credit_card_4190576"}
    )
    assert problem(stranger) == (422, "payment_method_not_found")


def test_paying_with_another_method_refunds_the_first(orders: httpx.Client) -> None:
    data = raw("orders")
    users = raw("users")
    for order_id, record in sorted(data.items()):  # noqa: B007 - the loop finds order_id
        owned = users[record["user_id"]]["payment_methods"]
        [paid] = record["payment_history"][:1]
        others = [m for m in owned if m != paid["payment_method_id"]]
        if (
            record["status"] == "pending"
            and others
            and owned[paid["payment_method_id"]]["source"] == "gift_card"
        ):
            break
    else:
        pytest.skip("no pending order paid by gift card whose user has another method")
    new = others[0]
    response = orders.post(f"/orders/{order_id[1:]}/payment", json={"payment_method_id": new})
    if owned[new]["source"] == "gift_card" and owned[new]["balance"] < paid["amount"]:
        assert problem(response) == (409, "insufficient_balance")
        return
    assert response.status_code == 200, response.text
    history = order(orders, order_id)["payment_history"]
    assert [t["transaction_type"] for t in history] == ["payment", "payment", "refund"]
    balance = methods(orders, record["user_id"])[paid["payment_method_id"]]["balance"]
    assert balance == round(owned[paid["payment_method_id"]]["balance"] + paid["amount"], 2)


def test_a_delivered_order_is_exchanged_once_and_a_pending_one_not(orders: httpx.Client) -> None:
    delivered = raw("orders")[f"#{DELIVERED}"]
    item = delivered["items"][0]
    variants = raw("products")[item["product_id"]]["variants"]
    other = next(k for k, v in sorted(variants.items()) if v["available"] and k != item["item_id"])
    body = {
        "item_ids": [item["item_id"]],
        "new_item_ids": [other],
        "payment_method_id": "credit_card_4190576",
    }
    response = orders.post(f"/orders/{DELIVERED}/exchanges", json=body)
    assert response.status_code == 200, response.text
    exchanged = order(orders, DELIVERED)
    assert exchanged["status"] == "exchange requested"
    assert exchanged["exchange_new_items"] == [other]
    assert exchanged["exchange_price_difference"] == round(
        variants[other]["price"] - item["price"], 2
    )
    assert exchanged["items"] == order(orders, DELIVERED)["items"]
    twice = orders.post(f"/orders/{DELIVERED}/exchanges", json=body)
    assert problem(twice) == (409, "order_not_delivered")
    pending = orders.post(
        f"/orders/{PENDING}/exchanges",
        json={"item_ids": [ITEM], "new_item_ids": [BETTER], "payment_method_id": GIFT_CARD},
    )
    assert problem(pending) == (409, "order_not_delivered")


def test_reset_puts_the_seeded_state_back_and_clears_the_effect_log(
    orders: httpx.Client,
) -> None:
    before = order(orders, PENDING)
    orders.post(f"/orders/{PENDING}/cancel", json={"reason": "ordered by mistake"})
    assert order(orders, PENDING)["status"] == "cancelled"
    assert len(orders.get("/_sandbox/effects").json()) == 1
    assert orders.post("/_sandbox/reset").status_code == 204
    assert order(orders, PENDING) == before
    assert orders.get("/_sandbox/effects").json() == []


def test_a_data_directory_without_the_files_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("{}")
    with pytest.raises(ConfigurationError, match=r"has no orders\.json"):
        SandboxEnterprise(tmp_path / "db", services=["orders"], retail_data=tmp_path).start()


def test_the_default_seed_is_still_the_packaged_subset(tmp_path: Path) -> None:
    with SandboxEnterprise(tmp_path, services=["orders"]) as enterprise:
        known = httpx.get(f"{enterprise.url('orders')}/orders/W1046662")
        unknown = httpx.get(f"{enterprise.url('orders')}/orders/{DELIVERED}")
    assert known.status_code == 200
    assert unknown.status_code == 404 or known.json()["user_id"] != "omar_anderson_3203"
