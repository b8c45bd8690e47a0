"""Every metric of the report explained once, for a fraud analyst; the page links each
table header and figure name to its entry here.

    term("ap", "Average precision")  ->  a link to the glossary entry "ap"
"""

from __future__ import annotations

from .fmt import esc

GLOSSARY: dict[str, tuple[str, str]] = {
    "test-window": ("Test window", "The most recent days whose fraud labels are complete. No model saw them while "
                    "it was trained or tuned, so figures on them are what to expect in production."),
    "counted": ("Counted payments", "Model quality figures (average precision, AUC, recall within capacity, card "
                "precision@k) and the gate leave out the payments of cards whose fraud was already known at the "
                "time: those cards are blocked, so catching them again says nothing about the model. Money, review "
                "volumes and the day-by-day and fraud-pattern figures cover every payment of the window: the review "
                "team sees them all."),
    "threshold": ("Review and decline thresholds", "The model gives every payment a score between 0 and 1 (a "
                  "calibrated probability of fraud). At or above the review threshold the payment goes to a human "
                  "reviewer; at or above the decline threshold it is declined automatically. They are chosen on the "
                  "validation days to cost the least within the review team's capacity."),
    "recall": ("Recall (share of fraud caught)", "Of the frauds, the share the policy sends to review or declines. "
               "Reviewed frauds are counted as caught."),
    "precision": ("Precision", "Of the payments sent to review or declined, the share that are fraud."),
    "decline-precision": ("Decline precision", "Of the declined payments, the share that are fraud. Declines are "
                          "made only where this is at least the configured floor."),
    "false-decline": ("False decline", "A legitimate payment declined: a customer turned away. Each costs the "
                      "configured false-decline cost."),
    "caught": ("Fraud caught / missed", "The amount of the frauds the policy reviews or declines (caught) and of "
               "those it approves (missed). Caught plus missed is all labelled fraud in the window."),
    "cost": ("Cost of the policy", "Review cost (reviews x review cost) + false-decline cost (legitimate payments "
             "declined x false-decline cost) + missed fraud (amount x fraud-loss multiplier)."),
    "savings": ("Savings", "Against no model: the cost of approving every payment (all fraud lost) minus the "
                "policy's cost. Against the previous champion: its cost on the same days minus this model's."),
    "capacity": ("Review capacity", "How many payments the review team can look at a day; the policy may not send "
                 "more on average."),
    "recall-at-capacity": ("Recall within capacity", "The share of fraud among each day's highest-scoring payments, "
                           "as many as the review capacity: what the team would catch reviewing the top of the "
                           "list. The gate compares models on it."),
    "ap": ("Average precision (AP)", "How well the scores rank fraud above legitimate payments, from 0 to 1 "
           "(1: every fraud scores above every legitimate payment; the fraud rate: no better than chance). The "
           "area under the precision-recall curve."),
    "auc": ("AUC ROC", "The chance that a random fraud scores above a random legitimate payment (0.5: chance). "
            "Flattering when fraud is rare; average precision is the stricter figure."),
    "card-precision": ("Card precision@k", "Each day, rank the cards by their highest score and take the top k "
                       "(k = the review capacity); the share of those cards that had a fraud that day, averaged "
                       "over days. What an investigator working card by card would find."),
    "calibration": ("Calibration, ECE and Brier score", "A calibrated score of 0.02 means about 2 in 100 such "
                    "payments are fraud. ECE (expected calibration error) is the average gap between score and "
                    "observed fraud rate; the Brier score the mean squared error of the scores. Lower is better "
                    "for both; shown before and after calibration."),
    "p-t": ("p_t and focal loss", "p_t is the probability the model gives to the true class of a payment (the "
            "fraud probability for a fraud, one minus it for a legitimate payment). Focal loss trains with weight "
            "(1 - p_t)^gamma, so easy payments (p_t near 1) count little; alpha weighs the fraud class. Rows with "
            "p_t below 0.5 are the hard examples the model still gets wrong."),
    "gate": ("Gate", "A new model replaces the champion only if its average precision and recall within capacity "
             "on the same test window are no worse than the champion's, within the configured tolerances."),
    "champion": ("Champion and challenger", "The champion is the model the API serves; the challenger is the one "
                 "this run trained. Each is named by its registry version id (time of publishing plus a random "
                 "suffix)."),
    "label-noise": ("Label noise", "Payments reported as fraud that were in fact legitimate (in the simulated data, "
                    "pattern label_noise). They are not a kind of fraud; they count in the labelled-fraud totals "
                    "because the model is scored against the labels."),
}


def term(key: str, text: str | None = None) -> str:
    """A link to the glossary entry ``key`` (KeyError for an unknown one)."""
    name = GLOSSARY[key][0]
    return f"<a class='term' href='#g-{key}' title='{esc(GLOSSARY[key][1])}'>{esc(text or name)}</a>"


def glossary_html() -> str:
    items = "".join(f"<dt id='g-{key}'>{esc(name)}</dt><dd>{esc(text)}</dd>" for key, (name, text) in GLOSSARY.items())
    return f"<dl class='glossary'>{items}</dl>"
