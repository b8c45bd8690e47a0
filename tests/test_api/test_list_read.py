"""GET /v1/lists/{list}/{entity} reads a list back, a page at a time, as pseudonyms: every
entry exactly once across the pages, never a card number."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS

pytestmark = pytest.mark.filterwarnings("ignore")
PANS = [f"45395787636{i:05d}" for i in range(7)]  # card numbers: must never come back


@pytest.fixture
def service(local_settings):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    container = build_container(local_settings)
    return container, TestClient(create_app(container))


def read_all(client, url: str, limit: int) -> tuple[list[dict], list[int]]:
    items, sizes, cursor = [], [], None
    while True:
        page = client.get(url, params={"limit": limit, **({"cursor": cursor} if cursor else {})}, headers=HEADERS)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return items, sizes


def test_a_list_reads_back_as_pseudonyms_page_by_page(service):
    container, client = service
    keys = container.overrides.keys
    for i, pan in enumerate(PANS):
        assert client.put("/v1/lists/block/card", json={"id": pan, "reason": f"stolen #{i}"},
                          headers=HEADERS).status_code == 204
    client.put("/v1/lists/allow/card", json={"id": "card-vip", "reason": "vip"}, headers=HEADERS)
    client.put("/v1/lists/block/terminal", json={"id": "T-77", "reason": "skimmer"}, headers=HEADERS)
    assert client.post("/v1/lists/block/card/remove", json={"id": PANS[3]}, headers=HEADERS).status_code == 204

    items, sizes = read_all(client, "/v1/lists/block/card", limit=2)
    assert sizes == [2, 2, 2]  # six entries, pages of two, the last page says it is the last
    expected = {keys.digest("card", pan): f"stolen #{i}" for i, pan in enumerate(PANS) if i != 3}
    assert {e["pseudonym"]: e["reason"] for e in items} == expected  # each once, the removed one gone
    assert [e["pseudonym"] for e in items] == sorted(expected)
    assert all(e["card_token"] == keys.card_token(pan) for e in items for pan in PANS
               if e["pseudonym"] == keys.digest("card", pan))  # the token logs and review messages carry
    assert all(e["added_at"].startswith("20") for e in items)
    everything = client.get("/v1/lists/block/card", params={"limit": 1000}, headers=HEADERS).text
    assert not any(pan in everything for pan in PANS)

    assert [e["reason"] for e in read_all(client, "/v1/lists/allow/card", 10)[0]] == ["vip"]
    (terminal,) = read_all(client, "/v1/lists/block/terminal", 10)[0]
    assert terminal["pseudonym"] == keys.digest("terminal", "T-77") and terminal["card_token"] is None
    assert read_all(client, "/v1/lists/allow/terminal", 10)[0] == []


def test_a_page_is_stable_while_the_list_changes(service):
    """The cursor is a position in pseudonym order: an entry added before it does not shift
    the next page, one added after it is on a later page."""
    container, client = service
    keys = container.overrides.keys
    cards = [f"card-{i}" for i in range(6)]
    for card in cards:
        client.put("/v1/lists/block/card", json={"id": card, "reason": "r"}, headers=HEADERS)
    first = client.get("/v1/lists/block/card", params={"limit": 3}, headers=HEADERS).json()
    cursor = first["next_cursor"]
    assert cursor == first["items"][-1]["pseudonym"]
    extra = [f"new-{i}" for i in range(20)]
    for card in extra:
        client.put("/v1/lists/block/card", json={"id": card, "reason": "r"}, headers=HEADERS)
    rest = client.get("/v1/lists/block/card", params={"limit": 100, "cursor": cursor}, headers=HEADERS).json()
    later = {keys.digest("card", c) for c in cards + extra if keys.digest("card", c) > cursor}
    assert {e["pseudonym"] for e in rest["items"]} == later and rest["next_cursor"] is None


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"cursor": "4539578763621486"},
                                   {"cursor": "not-hex"}])
def test_bad_paging_is_refused(service, query):
    _, client = service
    r = client.get("/v1/lists/block/card", params=query, headers=HEADERS)
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("query.")


def test_reading_a_list_needs_the_key(service):
    _, client = service
    assert client.get("/v1/lists/block/card").status_code == 401


def test_pages_from_dynamodb(aws_settings):
    """In DynamoDB a scan returns the entries in no order: pages are still in pseudonym order."""
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    container = build_container(aws_settings.model_copy(update={"metrics": "off"}))
    client = TestClient(create_app(container))
    for i in range(5):
        client.put("/v1/lists/block/card", json={"id": f"dyn-{i}", "reason": f"r{i}"}, headers=HEADERS)
    items, sizes = read_all(client, "/v1/lists/block/card", limit=2)
    expected = sorted(container.overrides.keys.digest("card", f"dyn-{i}") for i in range(5))
    assert [e["pseudonym"] for e in items] == expected and sizes == [2, 2, 1]
