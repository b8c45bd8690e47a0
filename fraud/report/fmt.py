"""Numbers, money and dates written for reading, and the one HTML table helper.

Every value the page shows goes through one of these, so a figure is rounded the same
way wherever it appears.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta

import pandas as pd

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
DASH = "–"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def money(value, currency: str, cents: bool = False) -> str:
    """€12,345 (whole units; ``cents`` for unit prices); codes without a symbol as 12,345 CHF."""
    if _missing(value):
        return DASH
    sign = "−" if value < 0 else ""
    digits = f"{abs(value):,.2f}" if cents else f"{abs(value):,.0f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


def count(value, per_day: bool = False) -> str:
    """Whole numbers with thousands separators; averages per day to one decimal under 10."""
    if _missing(value):
        return DASH
    if per_day and abs(value) < 10 and value != round(value):
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def pct(value, digits: int = 0) -> str:
    """A share as a percentage: 0.824 -> 82%."""
    if _missing(value):
        return DASH
    return f"{100 * value:.{digits}f}%"


def ratio(value, digits: int = 3) -> str:
    """A score between 0 and 1 (AP, AUC, ECE): three decimals."""
    return DASH if _missing(value) else f"{value:.{digits}f}"


def threshold(value: float) -> str:
    """A score threshold with four significant digits (0.02173 -> 0.02173, 0.64771 -> 0.6477)."""
    return f"{value:.4g}" if value < 1 else "never"


def _timestamp(value) -> pd.Timestamp | None:
    if _missing(value) or value == "":
        return None
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tzinfo is not None else ts


def date(value) -> str:
    """7 Jul 2026."""
    ts = _timestamp(value)
    return DASH if ts is None else f"{ts.day} {ts:%b %Y}"


def when(value) -> str:
    """7 Jul 2026, 14:02 UTC."""
    ts = _timestamp(value)
    return DASH if ts is None else f"{ts.day} {ts:%b %Y}, {ts:%H:%M} UTC"


def date_range(start, end_exclusive) -> str:
    """1–21 Jun 2026 for the window [1 Jun, 22 Jun)."""
    first, last = _timestamp(start), _timestamp(end_exclusive)
    if first is None or last is None:
        return DASH
    last = last - timedelta(days=1) if last == last.normalize() else last
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}{DASH}{last.day} {last:%b %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%b} {DASH} {last.day} {last:%b %Y}"
    return f"{date(first)} {DASH} {date(last)}"


def short_date(day: str) -> str:
    """'2026-06-01' -> 'Mon 1 Jun' (for day-by-day rows)."""
    d = datetime.strptime(day, "%Y-%m-%d")
    return f"{d:%a} {d.day} {d:%b}"


def table(header: list[str], rows: list[list[str]], name: str = "", row_classes: dict[int, str] | None = None) -> str:
    """An HTML table (class ``name``) from already formatted and escaped cells; the first column
    is text (left-aligned), the others numbers (right-aligned). ``row_classes``: row index ->
    class, e.g. a total."""
    classes = row_classes or {}
    head = "".join(f"<th scope='col'>{h}</th>" for h in header)
    body = "".join((f"<tr class='{classes[i]}'>" if i in classes else "<tr>") + "".join(f"<td>{c}</td>" for c in row)
                   + "</tr>" for i, row in enumerate(rows))
    return f"<table class='{name}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
