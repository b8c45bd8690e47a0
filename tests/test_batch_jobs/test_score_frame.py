"""Batch scoring explains the rows a person will look at, and only those."""

from __future__ import annotations

import json

from batch_jobs.scoring import REASONS, score_frame


def test_reasons_only_for_reviewed_and_declined_rows_and_the_right_ones(small_training, small_transactions,
                                                                        small_features):
    _, features = small_features
    bundle = small_training.bundle
    rows = small_transactions.tail(3000).reset_index(drop=True)
    feats = features.tail(3000).reset_index(drop=True)
    out = score_frame(bundle, rows, feats, "v1")
    flagged = (out["decision"] != "approve").to_numpy()
    assert 0 < flagged.sum() < len(out)
    assert (out.loc[~flagged, "reasons"] == "[]").all() and out.loc[~flagged, "reason_1"].isna().all()
    expected = bundle.reasons(feats[flagged], k=REASONS, exact=False)  # as the API explains
    assert [json.loads(r) for r in out.loc[flagged, "reasons"]] == json.loads(json.dumps(expected))
    assert list(out.loc[flagged, "reason_1"]) == [r[0]["feature"] if r else None for r in expected]
    assert (out["transaction_id"] == rows["transaction_id"]).all()
