"""Reading an allow/block list back, a page at a time.

The lists store only a keyed hash of each id (``Overrides.key``: ``<list>#<entity>#<HMAC>``),
so what comes back is that pseudonym, the card token that logs and review messages carry
(the first 16 hex digits of the same HMAC), the reason and when it was added: never an id.
Pages are in pseudonym order and the cursor is the last pseudonym of a page, so a page is
stable while entries are added or removed elsewhere in the list. The lists table holds
nothing but list entries; each page reads the entries of that one list (a scan with a key
prefix in DynamoDB), which is fine for lists of thousands, not for millions.
"""

from __future__ import annotations

from .schemas import ListedEntry, ListPage
from .scoring import Overrides

PSEUDONYM = r"^[0-9a-f]{32}$"


def read_list(overrides: Overrides, list_name: str, entity: str, limit: int, cursor: str | None) -> ListPage:
    prefix = f"{list_name}#{entity}#"
    after = prefix + (cursor or "")
    entries = sorted((key, item) for key, item in overrides.store.scan(prefix) if key > after)
    page = entries[:limit]
    items = [ListedEntry(pseudonym=(p := key[len(prefix):]), card_token=f"card_{p[:16]}" if entity == "card" else None,
                         reason=item.value["reason"], added_at=item.value.get("added_at", ""))
             for key, item in page]
    return ListPage(items=items, next_cursor=items[-1].pseudonym if len(entries) > limit else None)
