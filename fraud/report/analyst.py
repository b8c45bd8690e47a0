"""The fraud analyst's sections of the report: the decision in plain words, the money, the
catch per day and per fraud pattern, champion against challenger, and the place for drift.

Each function takes the ``RunView`` (and the figures' file names) and returns HTML.
"""

from __future__ import annotations

from . import fmt
from .fmt import esc, table
from .glossary import term
from .outcomes import NO_PATTERN, NOT_FRAUD_PATTERNS
from .view import RunView, kind_name, version_tag


def image(src: str, alt: str) -> str:
    return f"<img src='{esc(src)}' alt='{esc(alt)}'>"


def policy_sentence(outcomes: dict) -> str:
    """'A score of 0.0217 or more goes to review, 0.6477 or more is declined: about 60 reviews
    and 35 declines a day.' from a model's thresholds and its test-window volumes."""
    t, total = outcomes["thresholds"], outcomes["total"]
    reviews, declines = fmt.count(total["reviews_per_day"], True), fmt.count(total["declines_per_day"], True)
    review, decline = f"<b>{fmt.threshold(t['review'])}</b>", f"<b>{fmt.threshold(t['decline'])}</b>"
    score = f"A {term('threshold', 'score')} of"
    if t["decline"] >= 1:
        return f"{score} {review} or more goes to review; nothing is declined automatically: about {reviews} " \
               "reviews a day."
    if t["review"] >= t["decline"]:
        return f"{score} {decline} or more is declined; nothing goes to review: about {declines} declines a day."
    return f"{score} {review} or more goes to review, {decline} or more is declined: about {reviews} reviews " \
           f"and {declines} declines a day."


def _saved(r: RunView, amount: float) -> str:
    return f"saved <b>{r.money(amount)}</b>" if amount >= 0 else f"cost <b>{r.money(-amount)}</b> more"


def _served(r: RunView) -> str:
    served = r.served.get("version")
    since = f"{term('champion', 'champion')} since <b>{fmt.when(r.served.get('since'))}</b>"
    if served is None:
        return "<p>No model is served yet (the registry has no champion).</p>"
    if r.served_is_challenger:
        kind = r.challenger_facts.get("model_kind") or r.s["winner"]["kind"]
        before = (f"it replaced {version_tag(r.champion_facts['version'])}, as it is at least as good on the same "
                  f"days (the {term('gate', 'gate')})" if r.champion_facts else "it is the first champion")
        return f"<p>Served: this run's model {version_tag(served)} ({kind_name(kind)}), {since}; {before}.</p>"
    return (f"<p>Served: {version_tag(served)}, {since}. This run's model {version_tag(r.challenger_version)} was "
            f"published but <b>not promoted</b>: {esc(r.gate.get('reason', ''))}.</p>")


def model_age(s: dict) -> str:
    """How old this run's model is: its training window, the labels it knew and their age at
    as_of (a model knows nothing of the fraud reported after its label cutoff); for a latest
    refit, also the twin its test figures and calibration are of (``fraud.refit``)."""
    m = s.get("served_model")
    if not m:
        return ""
    if m.get("latest"):
        how = "refitted on the newest label-complete window once chosen"
    elif m.get("refitted"):
        how = "refitted past validation once chosen"
    else:
        how = "the model of the search's newest fold"
    out = (f"<p class='age'>This run's model learned from the transactions of "
           f"<b>{fmt.date_range(m['train']['start'], m['train']['end'])}</b> with the fraud labels known by "
           f"{fmt.date(m['label_cutoff'])}: <b>{m['age_days']:g} days old</b> on {fmt.date(m['as_of'])} ({how}).")
    twin, transfer = m.get("twin"), m.get("transfer") or {}
    if m.get("latest") and twin:
        out += (f" The test figures are those of its twin, the same recipe trained on "
                f"{fmt.date_range(twin['train']['start'], twin['train']['end'])}, whose calibration and thresholds it "
                f"uses ({esc(transfer.get('reason', ''))}).")
    elif twin and transfer.get("serve") == "twin":
        out += f" The refit on the newest window was not served: {esc(transfer.get('reason', ''))}."
    return out + "</p>"


def decision(r: RunView) -> str:
    s = r.s
    parts = [f"<h1>Fraud model report</h1><p class='sub'>Nightly run {esc(s.get('run_id', ''))} on data up to "
             f"{fmt.date(s['split']['as_of'])}. Figures are measured on the {term('test-window', 'test window')}, "
             f"{esc(r.window)}.</p>", "<section class='decision' id='decision'>", _served(r), model_age(s)]
    if r.served_outcomes:
        o = r.served_outcomes["total"]
        share = fmt.pct(o["caught_amount"] / o["fraud_amount"]) if o["fraud_amount"] else fmt.DASH
        parts += [f"<p class='policy'>{policy_sentence(r.served_outcomes)}</p>",
                  f"<p>On the {fmt.count(o['days'])} test days this policy caught <b>{r.money(o['caught_amount'])}"
                  f"</b> of the {r.money(o['fraud_amount'])} labelled fraud ({share} of the amount, "
                  f"{fmt.pct(o['recall'])} of the frauds) and missed {r.money(o['missed_amount'])}; it "
                  f"{_saved(r, o['savings'])} against no model ({r.money(abs(o['savings_per_day']))} a day).</p>"]
    target = s["policy"].get("target_recall")
    if target is not None:
        met = ("met on the validation days." if s["policy"].get("target_recall_met") else
               "<b class='warn'>not met</b>: the review capacity does not allow it; the policy is the cheapest "
               "within capacity.")
        parts.append(f"<p>Target recall {fmt.pct(target)} (this run's thresholds): {met}</p>")
    return "".join(parts) + "</section>"


MONEY_ROWS = [  # label, key of the totals, glossary entry, what it is without a model
    ("Labelled fraud in the window", "fraud_amount", "caught", "fraud_amount"),
    ("Fraud caught", "caught_amount", "caught", None), ("Fraud missed", "missed_amount", "caught", "fraud_amount"),
    ("Review cost", "review_cost", "cost", None), ("False-decline cost", "false_decline_cost", "false-decline", None),
    ("Cost of missed fraud", "missed_cost", "cost", "no_model_cost"), ("Total cost", "cost", "cost", "no_model_cost"),
    ("Savings against no model", "savings", "savings", None),
]


def money(r: RunView, images: dict) -> str:
    if not r.ours:
        return "<h2 id='money'>Money</h2><p>Not computed for this run.</p>"
    ours, theirs = r.ours["total"], r.theirs["total"] if r.theirs else None
    costs = r.ours["costs"]
    header = ["On the test window", f"This run's model<br>{version_tag(r.challenger_version)}",
              *([f"Previous champion<br>{version_tag(r.champion['version'])}"] if theirs else []), "No model"]
    rows = [[term(glossary, label), r.money(ours[key]), *([r.money(theirs[key])] if theirs else []),
             r.money(ours[no_model] if no_model else 0.0)] for label, key, glossary, no_model in MONEY_ROWS]
    rows.append(["Total cost a day", r.money(ours["cost_per_day"]),
                 *([r.money(theirs["cost_per_day"])] if theirs else []), r.money(ours["no_model_cost_per_day"])])
    loss = ("a missed fraud costs its amount" if costs["fraud_loss_multiplier"] == 1 else
            f"a missed fraud costs {costs['fraud_loss_multiplier']:g} times its amount")
    parts = [f"<h2 id='money'>Money</h2><p>In {esc(r.currency)}, over the {fmt.count(ours['days'])} test days "
             f"({esc(r.window)}). Each review costs {r.money(costs['review_cost'], True)}, each "
             f"{term('false-decline', 'false decline')} {r.money(costs['false_decline_cost'], True)}, and {loss} "
             "(<code>[policy]</code> in the configuration).</p>", table(header, rows, "money")]
    sentence = f"This run's model {_saved(r, ours['savings'])} against no model " \
               f"({r.money(abs(ours['savings_per_day']))} a day)"
    if theirs:
        diff, days = theirs["cost"] - ours["cost"], max(ours["days"], 1)
        sentence += (f" and saved <b>{r.money(diff)}</b> against the previous champion on the same days "
                     f"({r.money(diff / days)} a day)." if diff >= 0 else
                     f" and cost <b>{r.money(-diff)}</b> more than the previous champion on the same days "
                     f"({r.money(-diff / days)} a day).")
    else:
        sentence += "; there was no previous champion to compare with."
    parts.append(f"<p>{sentence}</p>")
    if "money_per_day" in images:
        parts.append(image(images["money_per_day"], "Fraud caught and missed, and the cost of each choice, per day"))
    return "".join(parts)


def _over_capacity(r: RunView) -> str:
    over = sum(d["reviews"] > r.capacity for d in r.ours["days"])
    return f"; reviews were above capacity on {over} of the {len(r.ours['days'])} days" if over else ""


def catch(r: RunView, images: dict) -> str:
    if not r.ours:
        return ""
    o = r.ours["total"]
    parts = [f"<h2 id='catch'>Fraud caught and review volume per day</h2><p>This run's model sends about "
             f"{fmt.count(o['reviews_per_day'], True)} payments a day to review (the team's "
             f"{term('capacity', 'capacity')}: {fmt.count(r.capacity)}) and declines about "
             f"{fmt.count(o['declines_per_day'], True)}, {fmt.count(o['false_declines_per_day'], True)} of them "
             f"legitimate{_over_capacity(r)}. It catches {fmt.pct(o['recall'])} of the frauds "
             f"({term('recall', 'recall')}).</p>"]
    if "catch_per_day" in images:
        parts.append(image(images["catch_per_day"], "Recall, reviews and declines per day"))

    def row(first, d):
        return [first, fmt.count(d["frauds"]), fmt.count(d["caught"]), fmt.pct(d["recall"]), fmt.count(d["reviews"]),
                fmt.count(d["declines"]), fmt.count(d["false_declines"]), r.money(d["missed_amount"]),
                r.money(d["savings"])]

    header = ["Day", "Frauds", "Caught", term("recall", "Recall"), "Reviews", "Declines",
              term("false-decline", "False declines"), "Fraud missed", term("savings", "Savings")]
    rows = [row(fmt.short_date(d["day"]), d) for d in r.ours["days"]]
    body = table(header, rows + [row(f"All {fmt.count(o['days'])} days", o)], "days", row_classes={len(rows): "total"})
    return "".join(parts) + f"<details><summary>Day by day</summary>{body}</details>"


def _pattern_name(pattern: str) -> str:
    if pattern in (NO_PATTERN, "unlabelled_pattern"):
        return "Pattern not recorded"
    return esc(pattern.replace("_", " ").capitalize())


def patterns(r: RunView) -> str:
    if not r.ours:
        return ""
    found = r.ours["patterns"]
    missed_total = sum(v["missed_amount"] for v in found.values()) or 1.0

    def row(name, v):
        return [name, fmt.count(v["frauds"]), fmt.count(v["caught"]), fmt.pct(v["recall"]), fmt.count(v["missed"]),
                r.money(v["missed_amount"]), fmt.pct(v["missed_amount"] / missed_total)]

    fraud = sorted(((k, v) for k, v in found.items() if k not in NOT_FRAUD_PATTERNS),
                   key=lambda kv: -kv[1]["missed_amount"])
    rows = [row(_pattern_name(k), v) for k, v in fraud]
    classes = {}
    for k, v in found.items():
        if k in NOT_FRAUD_PATTERNS:
            classes[len(rows)] = "apart"
            rows.append(row(f"{term('label-noise', 'Label noise')} (<code>{esc(k)}</code>): not a fraud pattern", v))
    classes[len(rows)] = "total"
    rows.append(row("All labelled fraud", r.ours["total"]))
    header = ["Fraud pattern", "Frauds", "Caught", term("recall", "Recall"), "Missed", "Amount missed",
              "Share of amount missed"]
    intro = ("Frauds of the test window by the kind of fraud recorded in the data (<code>fraud_pattern</code>), "
             "the ones whose missed amount is largest first.")
    if set(found) <= {NO_PATTERN, "unlabelled_pattern"}:
        intro = "The data records no fraud pattern (<code>[columns] fraud_pattern</code> is not mapped)."
    return f"<h2 id='patterns'>By fraud pattern</h2><p>{intro}</p>{table(header, rows, 'patterns', classes)}"


def models(r: RunView) -> str:
    """Challenger and champion side by side, each column named by its version id."""
    s = r.s
    columns = [("challenger", r.challenger, r.challenger_facts)]
    if r.champion:
        columns.append(("champion", r.champion, r.champion_facts or {}))
    served = r.served.get("version")

    def line(label, fn):
        return [label, *(fn(role, scores, facts) for role, scores, facts in columns)]

    def total(key, show):
        return lambda role, sc, f: show(sc["outcomes"]["total"][key]) if sc.get("outcomes") else fmt.DASH

    def threshold(key):
        return lambda role, sc, f: fmt.threshold(sc["outcomes"]["thresholds"][key]) if sc.get("outcomes") else fmt.DASH

    def since(role, sc, f):
        if role == "champion":
            return fmt.when(f.get("champion_since"))
        return fmt.when(r.served.get("since")) if r.served_is_challenger else "not promoted"

    rows = [
        line("Role", lambda role, sc, f: ("this run's challenger" if role == "challenger" else "previous champion")
             + (" (served)" if f.get("version") == served else "")),
        line("Model type", lambda role, sc, f: kind_name(f.get("model_kind")
                                                         or (s["winner"]["kind"] if role == "challenger" else None))),
        line("Published", lambda role, sc, f: fmt.when(f.get("published"))),
        line("Trained on data up to", lambda role, sc, f: fmt.date(
            f.get("data_as_of") or (s["split"]["as_of"] if role == "challenger" else None))),
        line("Champion since", since),
        line(term("ap", "Average precision"), lambda role, sc, f: fmt.ratio(sc.get("average_precision"))),
        line(term("recall-at-capacity"), lambda role, sc, f: fmt.pct(sc.get("recall_at_capacity"), 1)),
        line("Review threshold", threshold("review")),
        line("Decline threshold", threshold("decline")),
        line(term("recall", "Recall at its thresholds"), total("recall", fmt.pct)),
        line("Reviews a day", total("reviews_per_day", lambda v: fmt.count(v, True))),
        line("Declines a day", total("declines_per_day", lambda v: fmt.count(v, True))),
        line(term("cost", "Cost a day"), total("cost_per_day", r.money)),
    ]
    header = ["", *(version_tag(facts.get("version")) for _, _, facts in columns)]
    reason = r.gate.get("reason", "")
    verdict = (f"<p>Decision: <b>{esc(r.gate['decision'])}</b>. {esc(reason[:1].upper() + reason[1:])}.</p>"
               if r.gate.get("decision") else "")
    return (f"<h2 id='models'>Challenger vs champion (same test window)</h2><p>Both models scored on the same "
            f"days, {esc(r.window)}, each with its own thresholds; average precision and recall within capacity are "
            f"{term('counted', 'counted as the gate counts')}.</p>{table(header, rows, 'models')}{verdict}")


def drift() -> str:
    return ("<h2 id='drift'>Drift</h2><p class='placeholder'>Not monitored yet: once drift monitoring is in place this "
            "section will compare recent payments and their scores with the data the model was trained on.</p>")
