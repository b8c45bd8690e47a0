"""Drift and model health (``fraud monitor``): the decision log and the labels that arrived,
against the reference distributions stored with the champion's registry version.

``psi``: binning and the population stability index; ``reference``: a version's reference
distributions (computed by training, stored as ``reference.json``); ``drift``: PSI and
review share per day from the decision log; ``outcomes``: recall, precision, hard examples
and focal-loss percentiles from labels known by a time; ``health``: ``evaluate_health``,
the one verdict (``Health``); ``emit``: the verdict as CloudWatch EMF metrics; ``report``:
the HTML page and its PNG plots."""
