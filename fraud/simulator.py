"""A seedable simulator of a card-payment stream: the embedded default data.

The population: customers living in cities, each with a spending profile (typical
amount and spread, daily rate, share of online purchases) and the physical terminals
within reach of home; terminals with a location, a merchant category and a country.
Legitimate activity follows weekly and daily seasonality.

Fraud patterns, each recorded in ``fraud_pattern`` on the rows it creates:

- ``compromised_terminal``: a terminal is compromised for one to three weeks and every
  card used there in that time is hit (all its transactions are fraud);
- ``account_takeover``: a hijacked card makes a few transactions of several times its
  usual amount, anywhere, over the following days;
- ``card_testing``: a burst of tiny online amounts within minutes, then a large one;
- ``night_burst``: several transactions between midnight and 5 am, far from home.

A drift scenario (``drift_day``, off by default): from that day on card testing changes,
``card_testing_drift``: three times as frequent, with 8-40 amounts at online
marketplaces (category 5999) in place of tiny ones at digital-goods merchants; and
legitimate spending shifts: customers buy online 1.5 times as often (at most always) and
spend 20 % more per purchase. A model trained before the change has seen none of it: the
case for refitting on the newest data, and what drift monitoring must notice.

A little label noise: some frauds are never reported (label 0, pattern kept) and a few
legitimate rows are reported as fraud (pattern ``label_noise``). Fraud labels arrive
after a chargeback delay (hours to weeks); legitimate rows are confirmed when the
chargeback window (the label delay) closes.

``basic_columns=True`` writes only what most teams have: transaction_id, timestamp,
card_id, terminal_id, amount, label and label_time (the same stream, the other columns left out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .progress import progress_bar

log = logging.getLogger(__name__)

DAY = 86400
# merchant category -> (typical amount multiplier, online?)
CATEGORIES = {
    "5411": (0.8, False),   # grocery
    "5812": (1.0, False),   # restaurants
    "5541": (1.1, False),   # fuel
    "5651": (1.6, False),   # clothing
    "5732": (3.0, False),   # electronics
    "4722": (4.0, False),   # travel agencies
    "5999": (1.2, True),    # online marketplace
    "5816": (0.4, True),    # digital goods
    "5732e": (3.0, True),   # online electronics
}
ONLINE_COUNTRIES = np.array(["FR", "FR", "DE", "GB", "NL", "US", "CN"])
BASIC_COLUMNS = ("transaction_id", "timestamp", "card_id", "terminal_id", "amount", "label", "label_time")
LEGIT_DRIFT_ONLINE, LEGIT_DRIFT_AMOUNT = 1.5, 1.2  # legitimate spending from drift_day on
WEEKDAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.05, 1.15, 1.2, 0.7])  # Monday..Sunday


@dataclass(frozen=True)
class Population:
    home: np.ndarray            # (n_customers, 2) lat, lon
    mean_amount: np.ndarray
    amount_spread: np.ndarray
    daily_rate: np.ndarray
    online_share: np.ndarray
    reach_offsets: np.ndarray   # CSR: terminals within reach of each customer
    reach_terminals: np.ndarray
    term_loc: np.ndarray        # (n_terminals, 2)
    term_category: np.ndarray   # category keys
    term_multiplier: np.ndarray
    term_online: np.ndarray
    term_country: np.ndarray


def make_population(n_customers: int, n_terminals: int, rng: np.random.Generator) -> Population:
    n_cities = 20
    cities = np.column_stack([rng.uniform(43.5, 50.5, n_cities), rng.uniform(-1.0, 7.0, n_cities)])
    city_weight = 1.0 / np.arange(1, n_cities + 1)
    city_weight /= city_weight.sum()
    home = cities[rng.choice(n_cities, n_customers, p=city_weight)] + rng.normal(0, 0.08, (n_customers, 2))
    mean_amount = np.clip(rng.lognormal(np.log(35), 0.6, n_customers), 3, 400)
    spread = rng.uniform(0.3, 0.8, n_customers)
    daily_rate = rng.uniform(0.4, 3.6, n_customers)
    online_share = rng.beta(2, 9, n_customers)

    keys = np.array(list(CATEGORIES))
    online_keys = np.array([k for k in keys if CATEGORIES[k][1]])
    physical_keys = np.array([k for k in keys if not CATEGORIES[k][1]])
    n_online = max(n_terminals // 12, len(online_keys))
    category = np.concatenate([
        rng.choice(physical_keys, n_terminals - n_online, p=[0.35, 0.25, 0.15, 0.13, 0.08, 0.04]),
        np.resize(online_keys, n_online)])
    online = np.array([CATEGORIES[k][1] for k in category])
    loc = cities[rng.choice(n_cities, n_terminals, p=city_weight)] + rng.normal(0, 0.08, (n_terminals, 2))
    country = np.where(online, rng.choice(ONLINE_COUNTRIES, n_terminals), "FR")

    physical = np.flatnonzero(~online)
    tree = cKDTree(loc[physical])
    near = tree.query_ball_point(home, r=0.15)  # ~15 km
    _, nearest = tree.query(home, k=3)
    lists = [np.unique(np.r_[np.asarray(n, dtype=np.int64), nearest[i]]) for i, n in enumerate(near)]
    offsets = np.r_[0, np.cumsum([len(x) for x in lists])]
    reach = physical[np.concatenate(lists)]
    return Population(home, mean_amount, spread, daily_rate, online_share, offsets, reach, loc,
                      category, np.array([CATEGORIES[k][0] for k in category]), online, country)


class TransactionSimulator:
    """Generates days of transactions; ``write(directory)`` stores daily Parquet partitions."""

    def __init__(self, n_customers=5000, n_terminals=2000, start_date="2026-01-01", seed=42,
                 label_delay_days=7.0, compromise_rate=0.3, takeover_rate=3.0,
                 card_testing_rate=1.5, night_burst_rate=2.0, unreported_fraud=0.05,
                 false_report_rate=2e-4, basic_columns=False, drift_day: int | None = None, shard: int | None = None,
                 chargeback_cap_days: float = 60.0):
        self.n_customers = n_customers
        self.n_terminals = n_terminals
        self.start = pd.Timestamp(start_date, tz="UTC")
        self.seed = seed
        self.label_delay_s = int(label_delay_days * DAY)
        self.compromise_rate = compromise_rate
        self.takeover_rate = takeover_rate
        self.card_testing_rate = card_testing_rate
        self.night_burst_rate = night_burst_rate
        self.unreported_fraud = unreported_fraud
        self.false_report_rate = false_report_rate
        self.basic_columns = basic_columns
        self.drift_day = drift_day
        self.chargeback_cap_s = int(chargeback_cap_days * DAY)  # a fraud's label delay: lognormal, median 4 days
        # shard k of a population split across processes: its own ids (card, terminal,
        # transaction) and file name, so shards write side by side into the same days
        self.shard = shard
        self._prefix = "" if shard is None else f"S{shard:03d}-"
        self.rng = np.random.default_rng(seed)
        self.pop = make_population(n_customers, n_terminals, self.rng)
        self._compromised: dict[int, int] = {}  # terminal -> last compromised day
        self._pending: list[pd.DataFrame] = []  # fraud rows scheduled for later days

    # -- legitimate activity ----------------------------------------------------------
    def _legit(self, day: int) -> dict:
        rng, pop = self.rng, self.pop
        weekday = (self.start + pd.Timedelta(days=day)).weekday()
        counts = rng.poisson(pop.daily_rate * WEEKDAY_FACTOR[weekday])
        cust = np.repeat(np.arange(self.n_customers), counts)
        n = cust.size
        hour = np.mod(rng.normal(13.5, 4.0, n), 24.0)
        seconds = (hour * 3600).astype(np.int64)
        drifted = self.drift_day is not None and day >= self.drift_day
        online = rng.random(n) < pop.online_share[cust] * (LEGIT_DRIFT_ONLINE if drifted else 1.0)
        start, stop = pop.reach_offsets[cust], pop.reach_offsets[cust + 1]
        physical_pick = pop.reach_terminals[start + (rng.random(n) * (stop - start)).astype(np.int64)]
        online_terms = np.flatnonzero(pop.term_online)
        online_pick = online_terms[rng.integers(0, online_terms.size, n)]
        terminal = np.where(online, online_pick, physical_pick)
        amount = pop.mean_amount[cust] * pop.term_multiplier[terminal] * rng.lognormal(
            0.0, pop.amount_spread[cust], n) / np.exp(pop.amount_spread[cust] ** 2 / 2)
        if drifted:
            amount = amount * LEGIT_DRIFT_AMOUNT
        return {"cust": cust, "t": day * DAY + seconds, "terminal": terminal, "amount": amount,
                "pattern": np.full(n, "", dtype=object)}

    # -- fraud patterns ---------------------------------------------------------------
    def _far_terminal(self, cust: int) -> int:
        """A physical terminal more than ~50 km from the customer's home."""
        pop = self.pop
        for _ in range(20):
            t = int(self.rng.integers(0, self.n_terminals))
            if not pop.term_online[t] and np.abs(pop.term_loc[t] - pop.home[cust]).sum() > 0.5:
                return t
        return int(self.rng.integers(0, self.n_terminals))

    def _online_terminal(self, category: str | None = None) -> int:
        pop = self.pop
        mask = pop.term_online if category is None else (pop.term_category == category)
        choices = np.flatnonzero(mask)
        return int(choices[self.rng.integers(0, choices.size)])

    def _schedule(self, day, rows: list[tuple]) -> None:
        if rows:
            cust, t, term, amount, pattern = zip(*rows)
            self._pending.append(pd.DataFrame({"cust": cust, "t": t, "terminal": term,
                                               "amount": amount, "pattern": pattern}))

    def _new_frauds(self, day: int) -> None:
        rng, pop = self.rng, self.pop
        rows: list[tuple] = []
        for cust in rng.integers(0, self.n_customers, rng.poisson(self.takeover_rate)):
            for _ in range(rng.integers(2, 7)):
                t = (day + rng.uniform(0, 5)) * DAY
                term = self._far_terminal(cust) if rng.random() < 0.5 else self._online_terminal()
                rows.append((cust, int(t), term, pop.mean_amount[cust] * rng.uniform(3, 8),
                             "account_takeover"))
        drifted = self.drift_day is not None and day >= self.drift_day
        testing, category, low, high = (("card_testing_drift", "5999", 8.0, 40.0) if drifted else
                                        ("card_testing", "5816", 0.5, 3.0))
        for cust in rng.integers(0, self.n_customers, rng.poisson(self.card_testing_rate * (3 if drifted else 1))):
            t0 = (day + rng.uniform(0, 1)) * DAY
            term = self._online_terminal(category)
            for k in range(rng.integers(3, 11)):
                rows.append((cust, int(t0 + k * rng.uniform(10, 90)), term, rng.uniform(low, high), testing))
            big = max(200.0, pop.mean_amount[cust] * rng.uniform(5, 10))
            rows.append((cust, int(t0 + rng.uniform(1, 6) * 3600), self._online_terminal("5732e"), big, testing))
        for cust in rng.integers(0, self.n_customers, rng.poisson(self.night_burst_rate)):
            t0 = (day + rng.uniform(0, 4 / 24)) * DAY
            term = self._far_terminal(cust)
            for k in range(rng.integers(3, 7)):
                rows.append((cust, int(t0 + k * rng.uniform(60, 900)), term,
                             pop.mean_amount[cust] * rng.uniform(1.5, 4), "night_burst"))
        self._schedule(day, rows)
        physical = np.flatnonzero(~pop.term_online)
        for term in rng.choice(physical, rng.poisson(self.compromise_rate)):
            self._compromised[int(term)] = day + int(rng.integers(7, 22))

    def _take_pending(self, day: int) -> pd.DataFrame | None:
        if not self._pending:
            return None
        pending = pd.concat(self._pending, ignore_index=True)
        now = pending["t"] < (day + 1) * DAY
        self._pending = [pending[~now]] if (~now).any() else []
        return pending[now]

    # -- one day ----------------------------------------------------------------------
    def day(self, day: int) -> pd.DataFrame:
        """All transactions of simulation day ``day`` (0-based), sorted by time."""
        rng, pop = self.rng, self.pop
        self._new_frauds(day)
        legit = pd.DataFrame(self._legit(day))
        active = [t for t, until in self._compromised.items() if until >= day]
        self._compromised = {t: u for t, u in self._compromised.items() if u >= day}
        hit = legit["terminal"].isin(active).to_numpy()
        legit.loc[hit, "pattern"] = "compromised_terminal"
        frauds = self._take_pending(day)
        df = pd.concat([legit, frauds], ignore_index=True) if frauds is not None else legit
        df = df.sort_values("t", kind="stable").reset_index(drop=True)
        n = len(df)
        cust = df["cust"].to_numpy()
        term = df["terminal"].to_numpy()
        is_fraud = (df["pattern"] != "").to_numpy()
        label = is_fraud & (rng.random(n) >= self.unreported_fraud)
        false_report = ~is_fraud & (rng.random(n) < self.false_report_rate)
        label |= false_report
        pattern = df["pattern"].to_numpy().copy()
        pattern[false_report] = "label_noise"
        delay = np.where(label, np.clip(rng.lognormal(np.log(4 * DAY), 1.0, n), 3600, self.chargeback_cap_s),
                         self.label_delay_s)
        t = df["t"].to_numpy().astype(np.int64)
        stamp = self.start + pd.to_timedelta(t, unit="s")
        online = pop.term_online[term]
        frame = pd.DataFrame({
            "transaction_id": [f"T{self._prefix}{day:04d}{i:06d}" for i in range(n)],
            "timestamp": stamp,
            "card_id": [f"C{self._prefix}{c:06d}" for c in cust],
            "terminal_id": [f"M{self._prefix}{m:05d}" for m in term],
            "amount": np.round(np.maximum(df["amount"].to_numpy(), 0.5), 2),
            "currency": "EUR",
            "channel": np.where(online, "ecom", "pos"),
            "country": pop.term_country[term],
            "merchant_category": np.char.rstrip(pop.term_category[term].astype(str), "e"),
            "card_lat": pop.home[cust, 0].round(5),
            "card_lon": pop.home[cust, 1].round(5),
            "terminal_lat": pop.term_loc[term, 0].round(5),
            "terminal_lon": pop.term_loc[term, 1].round(5),
            "label": label.astype(np.int8),
            "label_time": stamp + pd.to_timedelta(delay.astype(np.int64), unit="s"),
            "fraud_pattern": pattern.astype(str),
        })
        return frame[list(BASIC_COLUMNS)] if self.basic_columns else frame

    def days(self, n_days: int, progress: bool = True):
        for d in progress_bar(range(n_days), enabled=progress, desc="simulating days", unit="day"):
            yield d, self.day(d)

    def write(self, directory: str | Path, n_days: int, progress: bool = True) -> list[Path]:
        """Write ``date=YYYY-MM-DD/part-0.parquet`` partitions (``part-<shard>`` for a shard);
        returns the files written. One day is in memory at a time (plus the frauds
        scheduled for later days), so any number of days fits; for more rows a day than
        one process should hold or generate, run shards (``bench/scale.py``).

        Each partition is written to a temporary name and renamed, so an interrupted run
        never leaves a half-written day behind.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for d, frame in self.days(n_days, progress):
            date = (self.start + pd.Timedelta(days=d)).strftime("%Y-%m-%d")
            part_dir = directory / f"date={date}"
            part_dir.mkdir(exist_ok=True)
            name = f"part-{self.shard or 0}.parquet"
            path = part_dir / name
            tmp = part_dir / f".{name}.tmp"
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
            written.append(path)
        log.info("simulated %d days into %s", n_days, directory)
        return written


def simulate(directory, days=180, **kwargs) -> list[Path]:
    """Convenience: simulate ``days`` days into ``directory``."""
    return TransactionSimulator(**kwargs).write(directory, days)
