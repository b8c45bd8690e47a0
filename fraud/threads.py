"""How many threads one training fit uses.

XGBoost sizes its default thread pool by the container's CPU quota (cgroup), LightGBM by
every CPU the host has: in a container limited to a few CPUs of a large host, LightGBM's
OpenMP threads outnumber the CPUs and wait for one another at every one of its many
per-leaf synchronisation points. So the search names the count for both libraries:
joblib's (loky's) count of the CPUs this process may use, quota and affinity included.
"""

from __future__ import annotations


def training_threads(n_jobs: int | None) -> int:
    """``n_jobs`` when set, else the usable CPUs (at least 1)."""
    if n_jobs:
        return int(n_jobs)
    from joblib import cpu_count

    return max(1, int(cpu_count()))
