"""Input validation: clear errors that name the column, the rows and the reason.

Two kinds of problem:

- fatal (``InputError``): a required column is missing, or a column cannot hold its type
  at all. Nothing is written.
- row-level: unparseable or missing timestamp, NaN/inf/negative amount, missing id,
  duplicate transaction id, label outside {0, 1}, label time before the transaction.
  Such rows are set aside with their reason. If their share stays under
  ``max_bad_row_fraction`` they go to a quarantine file and the run continues; above it the
  run stops with an ``InputError`` listing examples.

Timestamps given as text are read as ISO-8601 (YYYY-MM-DD, optionally with a time and an
offset; none = a wall-clock time of ``[data] timezone``, UTC by default) unless ``[data] timestamp_format`` gives their strptime format (then a
value that does not match is a bad row). Any other text form (``02/01/2026``, ``Jan 2 2026``)
is never guessed: without a format it is fatal, naming the column, an example and its row.
A numeric column holds seconds since the epoch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import ColumnMapping
from .schema import (AMOUNT, CARD_ID, FLOAT_COLUMNS, LABEL, LABEL_TIME, STRING_COLUMNS, TERMINAL_ID,
                     TIME_COLUMNS, TIMESTAMP, TRANSACTION_ID)

log = logging.getLogger(__name__)
EXAMPLES = 5
ISO_CURRENCY = r"^[A-Z]{3}$"


class InputError(ValueError):
    """Bad input that stops the run; the message names the column, rows and reason."""


def _describe(reason: str, count: int, examples: list[tuple[int, object]]) -> str:
    shown = ", ".join(f"row {r}" + (f" (transaction_id {i})" if isinstance(i, str) else "")
                      for r, i in examples[:EXAMPLES])
    more = f" and {count - len(examples[:EXAMPLES])} more" if count > EXAMPLES else ""
    return f"{reason}: {count} row(s): {shown}{more}"


def rename_columns(raw: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """Select and rename the mapped columns; a missing required column is fatal."""
    present = mapping.present()
    missing = [f"{ours} (mapped from '{theirs}')" for ours, theirs in present.items()
               if theirs not in raw.columns and ours in ColumnMapping.REQUIRED]
    if missing:
        raise InputError(f"missing required column(s): {', '.join(missing)}; "
                         f"the table has {list(raw.columns)[:20]}. Map each to your column in [columns] of "
                         "your config (our name = your column). Nothing was written.")
    optional_missing = [ours for ours, theirs in present.items() if theirs not in raw.columns]
    if optional_missing:
        log.info("optional columns not in the table, ignored: %s", optional_missing)
    keep = {theirs: ours for ours, theirs in present.items() if theirs in raw.columns}
    return raw[list(keep)].rename(columns=keep)


ISO_FORM = "YYYY-MM-DD, optionally with a time and an offset, e.g. 2026-01-02T10:00:00+01:00"
OTHER_FORMS_CHECKED = 1000  # distinct non-ISO values per chunk looked at for a date in another form


# a time of day followed by an offset: what makes an ISO-8601 text value time-zone aware
OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _localize(naive: pd.Series, timezone: str) -> pd.Series:
    """Naive wall-clock times of ``timezone`` as UTC. At a DST change, a time that occurs
    twice is read as the first (summer) one and a time that does not exist moves forward
    to the change: an hour a year, nothing dropped."""
    if timezone == "UTC":
        return naive.dt.tz_localize("UTC")
    return naive.dt.tz_localize(timezone, ambiguous=np.ones(len(naive), dtype=bool),
                                nonexistent="shift_forward").dt.tz_convert("UTC")


def _to_utc(values: pd.Series, column: str, timestamp_format: str = "", timezone: str = "UTC"
            ) -> tuple[pd.Series, str]:
    """(UTC timestamps, the reason for a value that came out missing). Numbers are epoch
    seconds; text is ISO-8601, or ``timestamp_format`` (strptime syntax) when it is set;
    values without an offset are wall-clock times of ``timezone``."""
    if pd.api.types.is_bool_dtype(values):
        raise InputError(f"{column}: boolean values cannot be timestamps")
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True, errors="coerce"), "unparseable timestamp"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC"), "unparseable timestamp"
    if pd.api.types.is_datetime64_dtype(values):
        return _localize(values, timezone), "unparseable timestamp"
    text = values.astype("string").str.strip()
    form, why = (timestamp_format, f"does not match timestamp_format {timestamp_format!r}") if timestamp_format \
        else ("ISO8601", "unparseable timestamp")
    out = pd.to_datetime(text, format=form, utc=True, errors="coerce")
    if timezone != "UTC" and ("%z" not in form):
        naive = ~text.str.contains(OFFSET, regex=True).fillna(False).to_numpy(dtype=bool) & out.notna().to_numpy()
        if naive.any():
            wall = pd.to_datetime(text[naive], format=form, errors="coerce")
            if isinstance(wall.dtype, pd.DatetimeTZDtype):  # mixed-in aware values: parsed right already
                wall = wall.dt.tz_localize(None)
            out = out.copy()
            out[naive] = _localize(wall, timezone)
    return out, why


def _first_other_form(text: np.ndarray) -> int | None:
    """Position of the first value that is a date in a non-ISO text form (``02/01/2026``,
    ``2.1.2026 10:00``, ``Jan 2 2026``), or None when the values are not dates at all."""
    values = pd.Series(text, dtype=object)
    first = ~values.duplicated()
    positions = np.flatnonzero(first.to_numpy())[:OTHER_FORMS_CHECKED]
    candidates = values.iloc[positions].astype(str)
    try:
        read = pd.to_datetime(candidates, format="mixed", utc=True, errors="coerce")
    except (ValueError, OverflowError):
        return None
    # a lenient parser fills what is missing from today ('12:30') or year 1 ('t3'): a date
    # in another form is one whose year is written in it
    year = read.dt.year
    written = [pd.notna(y) and 1900 <= y <= 2200 and (str(int(y)) in v or f"{int(y) % 100:02d}" in v)
               for y, v in zip(year, candidates)]
    hits = np.flatnonzero(written)
    return int(positions[hits[0]]) if hits.size else None


class _SeenSet:
    """Hashes of the transaction ids seen so far, as a few sorted arrays of doubling size
    (a log-structured merge): membership and insertion stay O(k log n) per chunk, at
    8 bytes per id, where one sorted array would be re-sorted whole on every chunk."""

    def __init__(self):
        self.levels: list[np.ndarray] = []

    def contains(self, values: np.ndarray) -> np.ndarray:
        found = np.zeros(values.shape[0], dtype=bool)
        for level in self.levels:
            pos = np.searchsorted(level, values)
            found |= level[np.minimum(pos, level.size - 1)] == values
        return found

    def add(self, values: np.ndarray) -> None:
        run = np.sort(values)
        while self.levels and self.levels[-1].size <= 2 * run.size:
            run = np.sort(np.concatenate([self.levels.pop(), run]), kind="mergesort")
        self.levels.append(run)


@dataclass
class ValidationReport:
    rows_in: int = 0
    rows_ok: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    @property
    def rows_bad(self) -> int:
        return self.rows_in - self.rows_ok

    @property
    def bad_fraction(self) -> float:
        return self.rows_bad / self.rows_in if self.rows_in else 0.0

    def describe(self, reason: str) -> str:
        """'<reason>: <count> row(s): row 3 (transaction_id t3), ...'"""
        return _describe(reason, self.reasons[reason], self.examples.get(reason, []))

    def summary(self) -> str:
        lines = [f"{self.rows_in} rows read, {self.rows_ok} valid, {self.rows_bad} set aside"]
        lines += [f"  {self.describe(reason)}" for reason in self.reasons]
        return "\n".join(lines)


CARD_MASK = "<card id removed>"


class Validator:
    """Validates chunks in order; remembers ids across chunks to catch duplicates."""

    def __init__(self, mapping: ColumnMapping, label_delay_seconds: float, require_label: bool = False,
                 timestamp_format: str = "", timezone: str = "UTC"):
        self.mapping = mapping
        self.label_delay = pd.Timedelta(seconds=label_delay_seconds)
        self.require_label = require_label
        self.timestamp_format = timestamp_format or ""
        self.timezone = timezone
        self.report = ValidationReport()
        self._seen = _SeenSet()

    def validate(self, raw: pd.DataFrame, first_row: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(valid rows with canonical names and types, rejected rows with ``_row`` and ``_reason``)."""
        df = rename_columns(raw, self.mapping)
        if self.require_label and LABEL not in df.columns:
            raise InputError(f"missing required column: label (mapped from '{self.mapping.label}'); "
                             "training needs labels: set [columns] label to your fraud flag (1 = fraud, "
                             "0 = legitimate). Nothing was written.")
        n = len(df)
        rows = np.arange(first_row, first_row + n)
        reason = np.full(n, "", dtype=object)

        def flag(mask, text, column):
            mask = np.asarray(mask, dtype=bool) & (reason == "")
            if mask.any():
                reason[mask] = f"{column}: {text}"

        for col in STRING_COLUMNS:
            if col in df.columns:
                values = df[col]
                missing = values.isna().to_numpy().copy()
                df[col] = values.astype("string").str.strip()
                if col in (TRANSACTION_ID, CARD_ID, TERMINAL_ID):
                    missing |= (df[col] == "").fillna(True).to_numpy()
                    flag(missing, "missing", col)
        if "currency" in df.columns:
            bad = ~df["currency"].str.fullmatch(ISO_CURRENCY).fillna(False).to_numpy()
            flag(bad & df["currency"].notna().to_numpy(), "not an ISO 4217 currency code", "currency")
        for col in FLOAT_COLUMNS:
            if col in df.columns:
                if pd.api.types.is_bool_dtype(df[col]) or pd.api.types.is_datetime64_any_dtype(df[col]):
                    raise InputError(f"{col}: column has type {df[col].dtype}, expected numbers")
                original = df[col]
                df[col] = pd.to_numeric(original, errors="coerce").astype("float64")
                unparseable = df[col].isna().to_numpy() & original.notna().to_numpy()
                flag(unparseable, "not a number", col)
        amount = df[AMOUNT].to_numpy()
        flag(np.isnan(amount), "missing or not a number", AMOUNT)
        flag(np.isinf(amount), "infinite", AMOUNT)
        flag(amount < 0, "negative", AMOUNT)
        for col in TIME_COLUMNS:
            if col in df.columns:
                original = df[col]
                df[col], why = _to_utc(original, col, self.timestamp_format, self.timezone)
                unparseable = df[col].isna().to_numpy() & original.notna().to_numpy()
                text = pd.api.types.is_string_dtype(original) or original.dtype == object
                if text and not self.timestamp_format and unparseable.any():
                    self._refuse_other_forms(original, unparseable, col, rows)
                flag(unparseable, why, col)
        flag(df[TIMESTAMP].isna().to_numpy(), "missing timestamp", TIMESTAMP)
        if LABEL in df.columns:
            label = pd.to_numeric(df[LABEL], errors="coerce")
            bad = (label.notna() & ~label.isin([0, 1])).to_numpy() | (label.isna() & df[LABEL].notna()).to_numpy()
            flag(bad, "label outside {0, 1}", LABEL)
            # no chargeback recorded = legitimate once the label delay has passed
            df[LABEL] = label.fillna(0).where(~bad, 0).astype("int8")
            if LABEL_TIME not in df.columns:
                df[LABEL_TIME] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
            df[LABEL_TIME] = df[LABEL_TIME].astype("datetime64[ns, UTC]").fillna(df[TIMESTAMP] + self.label_delay)
            flag((df[LABEL_TIME] < df[TIMESTAMP]).to_numpy(), "label time before the transaction", LABEL_TIME)
        self._check_duplicates(df, rows, reason, flag)

        bad = reason != ""
        self.report.rows_in += n
        self.report.rows_ok += int((~bad).sum())
        if bad.any():
            rejected = raw.loc[bad].copy()
            card = self.mapping.card_id
            if card in rejected:  # the quarantine file is shared to fix the source: no card numbers in it
                rejected[card] = rejected[card].where(rejected[card].isna(), CARD_MASK)
            rejected.insert(0, "_row", rows[bad])
            rejected.insert(1, "_reason", reason[bad])
            ids = df.loc[bad, TRANSACTION_ID].tolist() if TRANSACTION_ID in df else [None] * bad.sum()
            for text in pd.unique(reason[bad]):
                which = reason[bad] == text
                self.report.reasons[text] += int(which.sum())
                shown = self.report.examples.setdefault(text, [])
                for i in np.flatnonzero(which)[:max(0, EXAMPLES - len(shown))]:
                    shown.append((int(rows[bad][i]), ids[i]))
        else:
            rejected = raw.iloc[0:0].assign(_row=pd.Series(dtype="int64"), _reason=pd.Series(dtype=str))
        return df.loc[~bad].reset_index(drop=True), rejected

    def _refuse_other_forms(self, original: pd.Series, unparseable: np.ndarray, column: str, rows) -> None:
        """Stop on a date written in another text form than ISO-8601: day-first or month-first
        cannot be told apart, and a guess would shift every timestamp silently."""
        where = np.flatnonzero(unparseable)
        text = original.to_numpy(dtype=object)[where]
        hit = _first_other_form(np.array([str(v).strip() for v in text], dtype=object))
        if hit is None:
            return
        theirs = getattr(self.mapping, column)
        raise InputError(
            f"{column} (mapped from '{theirs}'): {str(text[hit]).strip()!r} at row {rows[where[hit]]} is not an "
            f"ISO-8601 timestamp ({ISO_FORM}); other text forms are not guessed, because a date such as "
            f"02/01/2026 reads as 2 January or 1 February. Set [data] timestamp_format in your config to the "
            f"column's strptime format (for example timestamp_format = \"%d/%m/%Y %H:%M\"), or write the "
            f"timestamps as ISO-8601. Nothing was written.")

    def _check_duplicates(self, df, rows, reason, flag) -> None:
        ids = df[TRANSACTION_ID]
        usable = ids.notna().to_numpy() & (reason == "")
        hashed = pd.util.hash_array(ids.fillna("").to_numpy(dtype=object), categorize=False)
        within = pd.Series(np.where(usable, hashed, 0)).duplicated(keep="first").to_numpy() & usable
        earlier = self._seen.contains(hashed) & usable
        flag(within | earlier, "duplicate transaction_id", TRANSACTION_ID)
        self._seen.add(hashed[usable & ~(within | earlier)])

    def check_fraction(self, max_fraction: float) -> None:
        """Stop if too large a share of the rows was bad (call once all chunks are read)."""
        if self.report.rows_in and self.report.bad_fraction > max_fraction:
            raise InputError(f"{self.report.bad_fraction:.2%} of rows are invalid, above the "
                             f"allowed {max_fraction:.2%}; nothing was written.\n{self.report.summary()}")
