"""Labels that arrive after scoring (reviewer outcomes, chargebacks, bulk imports), kept
with the time each became known so training stays point-in-time correct.

``store``: the LabelStore port (append, read what was known by a time) over a blob store
(a local directory or S3 ``labels/``), importable without pandas (the API appends from the
serving image); ``merge``: how stored labels override the labels of the transaction files;
``importer``: reading and validating a bulk label file."""

from .store import LABEL_COLUMNS, BlobLabelStore, LabelStore, open_label_store

__all__ = ["LABEL_COLUMNS", "BlobLabelStore", "LabelStore", "open_label_store"]
