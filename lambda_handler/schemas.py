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


TRANSACTION_EXAMPLE = {
    "transaction_id": "T0181000042", "timestamp": "2026-06-30T14:05:12Z", "card_id": "C004217",
    "terminal_id": "M01873", "amount": 42.5, "currency": "EUR", "channel": "pos", "country": "FR",
    "merchant_category": "5411", "card_lat": 48.85661, "card_lon": 2.35222, "terminal_lat": 48.8738,
    "terminal_lon": 2.295}
BATCH_EXAMPLE = [TRANSACTION_EXAMPLE,
                 {"transaction_id": "T0181000043", "timestamp": "2026-06-30T14:05:40Z", "card_id": "C018830",
                  "terminal_id": "M00112", "amount": 129.9, "currency": "EUR", "channel": "ecom", "country": "DE",
                  "merchant_category": "5732"}]
FEEDBACK_EXAMPLE = {"transaction_id": "T0181000042", "label": "fraud", "source": "chargeback",
                    "time": "2026-07-04T09:30:00Z"}
LIST_ENTRY_EXAMPLE = {"id": "C004217", "reason": "card reported stolen by the issuer (case 2026-0613)"}
SCORE_EXAMPLE = {"transaction_id": "T0181000042", "probability": 0.0132, "decision": "approve",
                 "reasons": [{"feature": "card_amount_ratio_30d", "value": 0.82, "contribution": -0.41},
                             {"feature": "card_terminal_seen_before", "value": 1.0, "contribution": -0.27}],
                 "model_version": "20260630T020512Z-a1b2c3", "request_id": "3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10",
                 "override": None, "policy_reason": None, "replayed": False}


class _Strict(BaseModel):
    """Unknown fields refused; no type coercion ("12" is not an amount, 1 is not an id)."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class Transaction(_Strict):
    """One card payment, as the acquirer sees it at authorisation."""
    model_config = ConfigDict(json_schema_extra={"examples": [TRANSACTION_EXAMPLE]})

    transaction_id: str = Field(pattern=ID, description="unique per transaction; retries must reuse it",
                                examples=["T0181000042"])
    timestamp: datetime = Field(strict=False, description="authorisation time, ISO-8601 with a UTC offset",
                                examples=["2026-06-30T14:05:12Z"])
    card_id: str = Field(pattern=ID, description="card or customer token (never a clear PAN)", examples=["C004217"])
    terminal_id: str = Field(pattern=ID, examples=["M01873"])
    amount: float = Field(ge=0, le=1e9, allow_inf_nan=False, strict=True, examples=[42.5],
                          description="in `currency` (the model's when absent)")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])
    channel: str | None = Field(None, max_length=32, description="`ecom` for card-not-present, else e.g. `pos`",
                                examples=["pos"])
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2", examples=["FR"])
    merchant_category: str | None = Field(None, pattern=r"^[0-9]{4}$", description="ISO 18245 MCC",
                                          examples=["5411"])
    device_id: str | None = Field(None, max_length=128, examples=["dev-9c41e2"])
    card_lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, strict=True, examples=[48.85661])
    card_lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, strict=True, examples=[2.35222])
    terminal_lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, strict=True, examples=[48.8738])
    terminal_lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, strict=True, examples=[2.295])

    @field_validator("timestamp", mode="before")
    @classmethod
    def _text(cls, v):
        return _iso_text(v)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _plausible_time(v)


class Reason(BaseModel):
    """One of the features that moved the score most (a SHAP-style contribution, in log-odds)."""
    feature: str = Field(examples=["card_amount_ratio_30d"])
    value: float | None = Field(examples=[0.82])
    contribution: float = Field(examples=[-0.41])


class Override(BaseModel):
    """The allow/block list entry that decided instead of the model."""
    list: Literal["allow", "block"]
    entity: Literal["card", "terminal"]
    reason: str = Field(examples=["card reported stolen by the issuer (case 2026-0613)"])


class ScoreResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SCORE_EXAMPLE]})

    transaction_id: str = Field(examples=["T0181000042"])
    probability: float = Field(description="calibrated probability of fraud", examples=[0.0132])
    decision: Literal["approve", "review", "decline"] = Field(
        description="review: sent to the review queue; thresholds are the model's (GET /v1/model)")
    reasons: list[Reason]
    model_version: str = Field(examples=["20260630T020512Z-a1b2c3"])
    request_id: str = Field(examples=["3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10"])
    override: Override | None = None
    policy_reason: str | None = Field(None, description="why the decision is not the model's alone (e.g. an "
                                                         "amount beyond what the model was trained on)",
                                         examples=["amount 25,000.00 EUR is above the largest the model was trained "
                                                   "on (9,870.00 EUR): sent to review"])
    replayed: bool = Field(False, description="true when this is the stored answer to a retried request")


class BatchRequest(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"transactions": BATCH_EXAMPLE}]})

    transactions: list[Transaction] = Field(min_length=1, description="at most FRAUD_MAX_BATCH, ids distinct")


class BatchResponse(BaseModel):
    results: list[ScoreResponse] = Field(description="in the order of the request")
    request_id: str = Field(examples=["3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10"])


class Feedback(_Strict):
    """A label for a transaction this service scored: a reviewer's verdict or a chargeback."""
    model_config = ConfigDict(json_schema_extra={"examples": [FEEDBACK_EXAMPLE]})

    transaction_id: str = Field(pattern=ID, examples=["T0181000042"])
    label: Literal["fraud", "legitimate"]
    source: Literal["reviewer", "chargeback"]
    time: datetime = Field(strict=False, description="when the label was established, ISO-8601 with a UTC offset",
                           examples=["2026-07-04T09:30:00Z"])

    @field_validator("time", mode="before")
    @classmethod
    def _text(cls, v):
        return _iso_text(v)

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _plausible_time(v)


class FeedbackResponse(BaseModel):
    transaction_id: str = Field(examples=["T0181000042"])
    recorded: bool = Field(description="false when an identical label was already recorded")
    duplicate: bool
    request_id: str = Field(examples=["3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10"])


class ListItem(_Strict):
    """The id travels in the body, never in the URL: paths end up in access logs."""
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "C004217"}]})

    id: str = Field(pattern=ID, description="the card id (as sent to /v1/score) or the terminal id",
                    examples=["C004217"])


class ListEntry(ListItem):
    model_config = ConfigDict(json_schema_extra={"examples": [LIST_ENTRY_EXAMPLE]})

    reason: str = Field(min_length=1, max_length=256, examples=["card reported stolen by the issuer (case 2026-0613)"])


class ListedEntry(BaseModel):
    """An entry as stored: its pseudonym, never the id (the store keeps only a keyed hash of it)."""
    pseudonym: str = Field(description="HMAC-SHA-256 of the id under the deployment's key (hex)",
                           examples=["5d41402abc4b2a76b9719d911017c592"])
    card_token: str | None = Field(None, description="cards only: the token that review messages and logs carry "
                                                     "for this card", examples=["card_5d41402abc4b2a76"])
    reason: str = Field(examples=["card reported stolen by the issuer (case 2026-0613)"])
    added_at: str = Field(description="when it was put on the list (UTC)", examples=["2026-06-13T08:15:02+00:00"])


class ListPage(BaseModel):
    items: list[ListedEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page",
                                    examples=["5d41402abc4b2a76b9719d911017c592"])


class StateInfo(BaseModel):
    status: Literal["fresh", "stale", "empty"]
    transactions_until: str | None = Field(None, examples=["2026-06-30T23:59:58+00:00"])
    age_hours: float | None = Field(None, examples=[14.1])


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded while review messages wait in the outbox")
    model_version: str = Field(examples=["20260630T020512Z-a1b2c3"])
    outbox_pending: int = Field(examples=[0])
    state: StateInfo | None = Field(None, description="the feature state's coverage, where the fallback policy "
                                                      "is on (FRAUD_STATE_FALLBACK)")


class ModelInfo(BaseModel):
    version: str = Field(examples=["20260630T020512Z-a1b2c3"])
    manifest: dict = Field(description="the registry's signed manifest of this version")
    thresholds: dict = Field(description="scores at or above `review` go to review, at or above `decline` are "
                                         "declined", examples=[{"review": 0.0217, "decline": 0.6477}])
    features: list[str] = Field(examples=[["amount", "log_amount", "hour", "card_amount_ratio_30d"]])
    calibration: str = Field(examples=["isotonic"])


class DrainResult(BaseModel):
    sent: int = Field(description="review messages sent by this drain", examples=[3])
    failed: int = Field(description="sends that failed (they stay pending)", examples=[0])
    pending: int = Field(description="still pending afterwards", examples=[0])
