"""Feature values from window aggregates: vector forms (batch) and scalar forms (online)
side by side, so they stay identical operation for operation (the window and history
arithmetic of the batch path lives in numba kernels in ``batch.py``, mirrored here).

Both paths feed these the same aggregates, built from the same sequence of float
additions, so batch and online features agree to the last bit or within an ulp of libm.
"""

from __future__ import annotations

import math

import numpy as np

from .spec import HISTORY_MEAN_FLOOR, ONLINE_CHANNELS, ZSCORE_VARIANCE_PRIOR

EARTH_RADIUS_KM = 6371.0088
NAN = float("nan")


# -- history of the card's amounts: mean, ratio and z-score (current row excluded) -------
def history_ratio_z_one(amount: float, n: int, total: float, total_sq: float) -> tuple[float, float]:
    """amount / max(mean, floor) and (amount - mean) / sqrt(var + prior) over the card's
    history; NaN without history, finite otherwise. Mirrors ``batch._history_columns``
    operation for operation."""
    if n == 0:
        return NAN, NAN
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0)
    return amount / max(mean, HISTORY_MEAN_FLOOR), (amount - mean) / math.sqrt(var + ZSCORE_VARIANCE_PRIOR)


def rate_one(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else NAN


# -- row-level features ----------------------------------------------------------------
def local_seconds(t_seconds, timezone: str = "UTC"):
    """Epoch seconds shifted by ``timezone``'s UTC offset at each instant (DST included), so
    the arithmetic below reads local wall-clock hours and days."""
    if timezone == "UTC":
        return t_seconds
    import pandas as pd

    t = np.asarray(t_seconds)
    wall = pd.DatetimeIndex(pd.to_datetime(t, unit="s", utc=True)).tz_convert(timezone).tz_localize(None)
    offsets = ((wall - pd.DatetimeIndex(pd.to_datetime(t, unit="s"))) // pd.Timedelta(seconds=1)).to_numpy()
    return t + offsets.astype(t.dtype)


def local_seconds_one(t_seconds: int, timezone: str = "UTC") -> int:
    if timezone == "UTC":
        return t_seconds
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return t_seconds + int(datetime.fromtimestamp(t_seconds, ZoneInfo(timezone)).utcoffset().total_seconds())


def calendar(t_seconds, night_hours, timezone: str = "UTC"):
    """hour, weekday (Monday 0), is_night, is_weekend from epoch seconds, in ``timezone``."""
    t_seconds = local_seconds(t_seconds, timezone)
    hour = (t_seconds // 3600) % 24
    weekday = (t_seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    start, end = night_hours
    night = (hour >= start) & (hour < end)
    return hour.astype(np.float64), weekday.astype(np.float64), night.astype(np.float64), \
        (weekday >= 5).astype(np.float64)


def calendar_one(t_seconds: int, night_hours, timezone: str = "UTC") -> tuple[float, float, float, float]:
    t_seconds = local_seconds_one(t_seconds, timezone)
    hour = (t_seconds // 3600) % 24
    weekday = (t_seconds // 86400 + 3) % 7
    start, end = night_hours
    return float(hour), float(weekday), float(start <= hour < end), float(weekday >= 5)


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


def haversine_km_one(lat1, lon1, lat2, lon2) -> float:
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (lat1, lon1, lat2, lon2)):
        return NAN
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = p2 - p1, math.radians(lon2) - math.radians(lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(h, 1.0)))


def is_online(channel) -> np.ndarray:
    import pandas as pd  # not at module level: the scoring Lambda uses only the scalar forms

    codes, uniques = pd.factorize(pd.Series(channel), use_na_sentinel=True)
    online = np.array([str(u).lower() in ONLINE_CHANNELS for u in uniques] + [False])
    return online[codes].astype(np.float64)  # code -1 (missing) picks the trailing False


def is_online_one(channel) -> float:
    return float(channel is not None and str(channel).lower() in ONLINE_CHANNELS)
