"""Batch jobs: the nightly training job, batch scoring, and their command line (``fraud``)."""
