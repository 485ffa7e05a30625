"""The stock feed: bulk upserts per store, as JSON and as CSV; a bad row refuses the upload."""

from __future__ import annotations

from typing import Any

from tests.cloud.conftest import STORE, Api

STOCK = f"/v1/stores/{STORE['id']}/stock"
CSV = {"Content-Type": "text/csv"}


def _levels(api: Api) -> dict[str, int]:
    page = api.ok(api.get("viewer", STOCK, params={"limit": 500}))
    return {item["sku"]: item["quantity"] for item in page["items"]}


def test_csv_upsert(api: Api, store: dict[str, Any]) -> None:
    body = "\ufeffsku,quantity\r\nLATTE,12\r\nCAKE,0\r\n\r\n"
    result = api.ok(api.put("marketer", STOCK, content=body, headers=CSV))
    assert result == {"store": STORE["id"], "upserted": 2, "removed": 0}
    assert _levels(api) == {"LATTE": 12, "CAKE": 0}
    api.ok(api.put("marketer", STOCK, content="sku,quantity\nLATTE,3\n", headers=CSV))
    assert _levels(api) == {"LATTE": 3, "CAKE": 0}


def test_json_upsert_and_full_snapshot(api: Api, store: dict[str, Any]) -> None:
    items = [{"sku": "LATTE", "quantity": 5}, {"sku": "CAKE", "quantity": 2}]
    api.ok(api.put("marketer", STOCK, json={"items": items}))
    api.ok(api.put("marketer", STOCK, json={"items": [{"sku": "TEA", "quantity": 9}]}))
    assert _levels(api) == {"LATTE": 5, "CAKE": 2, "TEA": 9}
    result = api.ok(
        api.put(
            "marketer",
            STOCK,
            params={"replace": "true"},
            json={"items": [{"sku": "TEA", "quantity": 1}]},
        )
    )
    assert result["removed"] == 2
    assert _levels(api) == {"TEA": 1}


def test_many_rows_in_batches(api: Api, store: dict[str, Any]) -> None:
    rows = "\n".join(f"SKU-{n:05d},{n}" for n in range(1_200))
    result = api.ok(api.put("marketer", STOCK, content=f"sku,quantity\n{rows}\n", headers=CSV))
    assert result["upserted"] == 1_200
    assert api.ok(api.get("viewer", STOCK, params={"limit": 1}))["total"] == 1_200


def test_a_bad_csv_row_names_row_and_column_and_changes_nothing(
    api: Api, store: dict[str, Any]
) -> None:
    api.ok(api.put("marketer", STOCK, content="sku,quantity\nLATTE,7\n", headers=CSV))
    body = "sku,quantity\nLATTE,8\nCAKE,lots\nTEA,-1\n,4\nBUN,1,extra\n"
    response = api.put("marketer", STOCK, content=body, headers=CSV)
    assert response.status_code == 422
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert "valid integer" in problems[("body", "row 3", "quantity")]
    assert "greater than or equal to 0" in problems[("body", "row 4", "quantity")]
    assert "at least 1 character" in problems[("body", "row 5", "sku")]
    assert "expected 2 columns, found 3" in problems[("body", "row 6")]
    assert _levels(api) == {"LATTE": 7}


def test_a_bad_csv_header(api: Api, store: dict[str, Any]) -> None:
    response = api.put("marketer", STOCK, content="article;qty\nLATTE;7\n", headers=CSV)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "row 1"] and "sku,quantity" in problem["msg"]


def test_a_repeated_sku_is_refused(api: Api, store: dict[str, Any]) -> None:
    response = api.put("marketer", STOCK, content="sku,quantity\nA,1\nA,2\n", headers=CSV)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "row 3", "sku"]
    items = [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]
    response = api.put("marketer", STOCK, json={"items": items})
    assert response.status_code == 422 and "more than once" in response.text


def test_bad_json_and_media_type(api: Api, store: dict[str, Any]) -> None:
    response = api.put("marketer", STOCK, json={"items": [{"sku": "A", "quantity": "x"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "items", 0, "quantity"]
    response = api.put(
        "marketer", STOCK, content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = api.put("marketer", STOCK, content=b"<x/>", headers={"Content-Type": "text/xml"})
    assert response.status_code == 415
    response = api.put("marketer", STOCK, content=b"\xff\xfe", headers=CSV)
    assert response.status_code == 422 and "UTF-8" in response.text
