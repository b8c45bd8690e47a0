"""Request and response models: strict, unknown fields refused, every error names its field."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID = r"^[A-Za-z0-9._:\-]{1,128}$"


EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)


def _plausible_time(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-06-01T12:00:00Z")
    if not EARLIEST <= v < LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return v


def _iso_text(v):
    """A timestamp is ISO-8601 text: a bare number (seconds? milliseconds?) is refused."""
    if not isinstance(v, (str, datetime)):
        raise ValueError("must be ISO-8601 text with a UTC offset, e.g. 2026-06-01T12:00:00Z")
    return v


class _Strict(BaseModel):
    """Unknown fields refused; no type coercion ("12" is not an amount, 1 is not an id)."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class Transaction(_Strict):
    transaction_id: str = Field(pattern=ID, description="unique per transaction; retries must reuse it")
    timestamp: datetime = Field(strict=False, description="authorisation time, ISO-8601 with a UTC offset")
    card_id: str = Field(pattern=ID, description="card or customer token (never a clear PAN)")
    terminal_id: str = Field(pattern=ID)
    amount: float = Field(ge=0, le=1e9, allow_inf_nan=False, strict=True)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    channel: str | None = Field(None, max_length=32)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    merchant_category: str | None = Field(None, pattern=r"^[0-9]{4}$")
    device_id: str | None = Field(None, max_length=128)
    card_lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, strict=True)
    card_lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, strict=True)
    terminal_lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, strict=True)
    terminal_lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, strict=True)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _text(cls, v):
        return _iso_text(v)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _plausible_time(v)


class Reason(BaseModel):
    feature: str
    value: float | None
    contribution: float


class Override(BaseModel):
    list: Literal["allow", "block"]
    entity: Literal["card", "terminal"]
    reason: str


class ScoreResponse(BaseModel):
    transaction_id: str
    probability: float
    decision: Literal["approve", "review", "decline"]
    reasons: list[Reason]
    model_version: str
    request_id: str
    override: Override | None = None
    policy_reason: str | None = Field(None, description="why the decision is not the model's alone (e.g. an "
                                                         "amount beyond what the model was trained on)")
    replayed: bool = Field(False, description="true when this is the stored answer to a retried request")


class BatchRequest(_Strict):
    transactions: list[Transaction] = Field(min_length=1)


class BatchResponse(BaseModel):
    results: list[ScoreResponse]
    request_id: str


class Feedback(_Strict):
    transaction_id: str = Field(pattern=ID)
    label: Literal["fraud", "legitimate"]
    source: Literal["reviewer", "chargeback"]
    time: datetime = Field(strict=False)

    @field_validator("time", mode="before")
    @classmethod
    def _text(cls, v):
        return _iso_text(v)

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _plausible_time(v)


class FeedbackResponse(BaseModel):
    transaction_id: str
    recorded: bool
    duplicate: bool
    request_id: str


class ListItem(_Strict):
    """The id travels in the body, never in the URL: paths end up in access logs."""
    id: str = Field(pattern=ID, description="the card id (as sent to /v1/score) or the terminal id")


class ListEntry(ListItem):
    reason: str = Field(min_length=1, max_length=256)


class StateInfo(BaseModel):
    status: Literal["fresh", "stale", "empty"]
    transactions_until: str | None = None
    age_hours: float | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    model_version: str
    outbox_pending: int
    state: StateInfo | None = Field(None, description="the feature state's coverage, where the fallback policy "
                                                      "is on (FRAUD_STATE_FALLBACK)")


class ModelInfo(BaseModel):
    version: str
    manifest: dict
    thresholds: dict
    features: list[str]
    calibration: str
