"""The local cluster's workers start without ``MALLOC_TRIM_THRESHOLD_`` (glibc keeps its
adaptive mmap threshold: bench/scale.py measured the feature table faster without it), even
when this process's environment already holds it, as it does after any default Nanny ran
here; and the environment is given back as it was."""

import os

from fraud.features.distributed import MALLOC_TRIM, dask_client


def test_local_workers_start_without_the_malloc_trim_threshold(monkeypatch):
    monkeypatch.setenv(MALLOC_TRIM, "65536")  # what a default Nanny leaves in os.environ
    with dask_client("local", n_workers=1) as client:
        seen = client.run(lambda: (os.environ.get(MALLOC_TRIM), os.environ.get("OMP_NUM_THREADS")))
        assert MALLOC_TRIM not in os.environ
    assert list(seen.values()) == [(None, "1")]  # Dask's other worker settings kept
    assert os.environ[MALLOC_TRIM] == "65536"
