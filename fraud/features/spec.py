"""The declarative feature definition shared by the batch, Dask and online paths.

A ``Feature`` names an entity, an aggregation and (for aggregates) a window. The same
``FeatureSpec`` drives ``batch.build_features`` (vectorised over a DataFrame),
``distributed.build_features_dask`` and ``online.OnlineFeatures`` (one transaction against
per-entity state), so training and serving compute the same numbers.

Window semantics (identical on every path, and what makes bounded online state exact):

- Time is whole UTC seconds. Transactions sharing a second are ordered by
  ``schema.tiebreak(transaction_id)``.
- A window of length W uses buckets of g = 5 min (W <= 1 h), 1 h (W <= 1 d) or 1 d, and
  covers the n = ceil(W / g) buckets ending with the current one: it starts at
  (floor(t / g) - n + 1) * g and ends with the current transaction (included for
  ``count``/``sum``/``mean``, excluded for the card's amount history).
- Label-based windows count labels whose label time (when the label became known) is
  strictly before the transaction and inside the bucket-aligned window. A label not yet
  known at the transaction's time is never used.
- Common point of compromise (``compromise_windows``; both need labels). With ``begin`` the
  window's aligned start and "known" meaning label time strictly before the transaction:
  ``terminal_compromised_cards_<w>`` is the number of distinct cards that used this
  terminal in [begin, t) on an earlier transaction (in the order above) and whose latest
  fraud label known at t became known at or after ``begin`` (a card compromised and
  reported within the window); ``card_compromised_terminals_<w>`` is the number of distinct
  terminals this card used in [begin, t) on an earlier transaction at which the latest
  fraud label known at t (of any card) became known at or after ``begin``. Both cross
  entities (card labels x terminal use): batch and Dask read the fraud label times of the
  whole table (``batch.CrossContext``); online keeps them bounded (``online`` docstring).
- ``seen_before`` (card, terminal) is 1 when the card's previous transaction at this
  terminal (earlier in the order above, so a same-second one counts) is at most
  ``history_window`` seconds before this one, else 0; not bucket-aligned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..config import ColumnMapping, FeatureConfig
from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID

TRANSACTION, CARD, TERMINAL, CARD_TERMINAL = "transaction", "card", "terminal", "card_terminal"
ROW_AGGREGATIONS = ("amount", "log_amount", "hour", "weekday", "is_night", "is_weekend",
                    "distance_km", "is_online")
WINDOW_AGGREGATIONS = ("count", "sum", "mean")
HISTORY_AGGREGATIONS = ("amount_ratio", "amount_zscore")
LABEL_AGGREGATIONS = ("fraud_rate", "label_count")
CROSS_AGGREGATIONS = ("compromised_cards", "compromised_terminals")  # common point of compromise
# card_compromised_terminals looks at the card's most recently used terminals only: one
# batched read of their compromise items per transaction online, whatever the card does
COMPROMISE_RECENT_TERMINALS = 100
# the canonical columns an optional feature needs (by aggregation): without them it is
# dropped. Every feature reads the core columns; the engines read no others
CORE_COLUMNS = (TRANSACTION_ID, TIMESTAMP, CARD_ID, TERMINAL_ID, AMOUNT, LABEL, LABEL_TIME)
NEEDS_COLUMNS = {"is_online": ("channel",), "distance_km": ("card_lat", "card_lon", "terminal_lat", "terminal_lon"),
                 **{agg: ("label",) for agg in LABEL_AGGREGATIONS + CROSS_AGGREGATIONS}}
# feature families, for the ablation table (fraud.ablation): aggregation -> family
FAMILIES = {**{agg: "row calendar" for agg in ("hour", "weekday", "is_night", "is_weekend")},
            **{agg: "row amount" for agg in ("amount", "log_amount")},
            **{agg: "row extra columns" for agg in ("is_online", "distance_km")},
            **{agg: "terminal labels" for agg in LABEL_AGGREGATIONS},
            **{agg: "compromise" for agg in CROSS_AGGREGATIONS},
            **{agg: "card history" for agg in HISTORY_AGGREGATIONS + ("seen_before",)},
            "seconds_since_previous": "card velocity"}
ONLINE_CHANNELS = ("ecom", "online", "cnp", "web", "app")
ZSCORE_VARIANCE_PRIOR = 1.0  # amount units^2: keeps z finite for cards that always spend the same
# amount units: the history mean an amount ratio divides by is at least this, so the ratio
# stays finite for cards whose history is all zero-amount authorisations (card checks)
HISTORY_MEAN_FLOOR = 0.01


def bucket_seconds(window: int) -> int:
    """Bucket width for a window: 5 min up to 1 h, 1 h up to 1 d, else 1 d."""
    if window <= 3600:
        return 300
    if window <= 86400:
        return 3600
    return 86400


def n_buckets(window: int) -> int:
    return math.ceil(window / bucket_seconds(window))


def window_label(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Feature:
    name: str
    entity: str
    aggregation: str
    window: int | None = None

    @property
    def family(self) -> str:
        """card velocity, card history, terminal, terminal labels, compromise, row calendar, ..."""
        if self.aggregation in FAMILIES:
            return FAMILIES[self.aggregation]
        return "card velocity" if self.entity == CARD else "terminal"


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[Feature, ...]
    history_window: int = 30 * 86400
    night_hours: tuple[int, int] = (0, 6)
    version: int = 1
    timezone: str = "UTC"  # where hour, night and weekend are read (the business's local time)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def of(self, entity: str) -> list[Feature]:
        return [f for f in self.features if f.entity == entity]

    def windows(self, entity: str, aggregations) -> list[int]:
        """Distinct windows used by an entity's features of these aggregations."""
        return sorted({f.window for f in self.features
                       if f.entity == entity and f.aggregation in aggregations and f.window})

    def granularities(self, entity: str, aggregations) -> dict[int, int]:
        """bucket width -> most buckets any window of that width needs."""
        out: dict[int, int] = {}
        for w in self.windows(entity, aggregations):
            g = bucket_seconds(w)
            out[g] = max(out.get(g, 0), n_buckets(w))
        return out

    def columns_read(self) -> list[str]:
        """The canonical columns the engines read to compute these features (the Dask
        engine shuffles only these and the ones asked to be kept)."""
        extra = (c for f in self.features for c in NEEDS_COLUMNS.get(f.aggregation, ()))
        return list(dict.fromkeys([*CORE_COLUMNS, *extra]))

    def needs(self, *aggregations: str) -> bool:
        return any(f.aggregation in aggregations for f in self.features)

    # -- persistence (stored with every model in the registry) ---------------------------
    def to_dict(self) -> dict:
        return {"version": self.version, "history_window": self.history_window,
                "night_hours": list(self.night_hours), "timezone": self.timezone,
                "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(features=tuple(Feature(**f) for f in data["features"]),
                   history_window=int(data["history_window"]),
                   night_hours=tuple(data["night_hours"]), version=int(data.get("version", 1)),
                   timezone=data.get("timezone", "UTC"))

    @classmethod
    def default(cls, config: FeatureConfig | None = None, mapping: ColumnMapping | None = None,
                timezone: str = "UTC", available=None) -> "FeatureSpec":
        """The standard fraud features for the windows in ``config`` and the columns in
        ``mapping``, calendar features in ``timezone``. ``available``: the canonical columns
        the data actually has (after renaming); a feature whose columns are not mapped, or
        mapped but absent from the data, is left out (see ``dropped_features``)."""
        feats = [f for f in _all_features(config or FeatureConfig())
                 if not _missing(f, mapping or ColumnMapping(), available)]
        config = config or FeatureConfig()
        return cls(features=tuple(feats), history_window=config.history_window,
                   night_hours=tuple(config.night_hours), timezone=timezone)


def _missing(feature: Feature, mapping: ColumnMapping, available=None) -> list[str]:
    """The columns ``feature`` needs that are not mapped (or not in ``available``)."""
    return [c for c in NEEDS_COLUMNS.get(feature.aggregation, ())
            if not getattr(mapping, c) or (available is not None and c not in available)]


def dropped_features(config: FeatureConfig | None, mapping: ColumnMapping, available=None) -> dict[str, list[str]]:
    """Default features left out for want of a column: feature name -> the missing columns
    (what the run warns about and the report lists)."""
    return {f.name: miss for f in _all_features(config or FeatureConfig())
            if (miss := _missing(f, mapping, available))}


def _all_features(config: FeatureConfig) -> list[Feature]:
    """Every default feature for ``config``'s windows, as if every optional column were there."""
    feats = [Feature("amount", TRANSACTION, "amount"), Feature("log_amount", TRANSACTION, "log_amount"),
             Feature("hour", TRANSACTION, "hour"), Feature("weekday", TRANSACTION, "weekday"),
             Feature("is_night", TRANSACTION, "is_night"), Feature("is_weekend", TRANSACTION, "is_weekend")]
    feats.append(Feature("is_online", TRANSACTION, "is_online"))
    feats.append(Feature("distance_from_home_km", TRANSACTION, "distance_km"))
    for w in config.card_windows:
        for agg in WINDOW_AGGREGATIONS:
            feats.append(Feature(f"card_{agg}_{window_label(w)}", CARD, agg, w))
    h = config.history_window
    feats += [Feature(f"card_amount_ratio_{window_label(h)}", CARD, "amount_ratio", h),
              Feature(f"card_amount_zscore_{window_label(h)}", CARD, "amount_zscore", h),
              Feature("card_seconds_since_previous", CARD, "seconds_since_previous"),
              Feature("card_terminal_seen_before", CARD_TERMINAL, "seen_before")]
    for w in config.terminal_windows:
        for agg in ("count", "mean"):
            feats.append(Feature(f"terminal_{agg}_{window_label(w)}", TERMINAL, agg, w))
    for w in config.label_windows:
        feats.append(Feature(f"terminal_fraud_rate_{window_label(w)}", TERMINAL, "fraud_rate", w))
        feats.append(Feature(f"terminal_label_count_{window_label(w)}", TERMINAL, "label_count", w))
    for w in config.compromise_windows:
        feats.append(Feature(f"terminal_compromised_cards_{window_label(w)}", TERMINAL, "compromised_cards", w))
        feats.append(Feature(f"card_compromised_terminals_{window_label(w)}", CARD, "compromised_terminals", w))
    return feats


def feature_names(config: FeatureConfig | None = None, mapping: ColumnMapping | None = None,
                  available=None) -> list[str]:
    """The default feature names for a config and column mapping (and the data's columns)."""
    return FeatureSpec.default(config, mapping, available=available).names
