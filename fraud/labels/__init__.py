"""Labels that arrive after scoring (reviewer outcomes, chargebacks, bulk imports), kept
with the time each became known so training stays point-in-time correct.

``store``: the LabelStore port (append, read what was known by a time) over a blob store
(a local directory or S3 ``labels/``); ``merge``: how stored labels override the labels of
the transaction files; ``importer``: reading and validating a bulk label file."""

from .merge import merge_labels, with_stored_labels
from .store import LABEL_COLUMNS, BlobLabelStore, LabelStore, open_label_store

__all__ = ["LABEL_COLUMNS", "BlobLabelStore", "LabelStore", "merge_labels", "open_label_store", "with_stored_labels"]
