"""Run the ``fraud`` CLI with this process's data segment capped (``RLIMIT_DATA``).

    python capped_driver.py BUDGET_MIB fraud-args...      (BUDGET_MIB 0: no cap, only measure)

Everything the job imports is imported first; the cap is then what the process holds
(``VmData``) plus the budget, so the budget is what the job may add while it runs: the
data the driver holds. The Dask workers run in their own processes, outside the cap.
Prints ``VMDATA_GROWTH_MIB=<n>`` (the peak growth seen by a sampling thread) at exit.
"""

from __future__ import annotations

import atexit
import resource
import sys
import threading
import time

import dask.dataframe  # noqa: F401
import distributed  # noqa: F401
import lightgbm  # noqa: F401
import matplotlib.pyplot  # noqa: F401
import pandas  # noqa: F401
import pyarrow.dataset  # noqa: F401
import sklearn.linear_model  # noqa: F401
import xgboost.dask  # noqa: F401

import batch_jobs.dask_nightly  # noqa: F401
import batch_jobs.nightly  # noqa: F401
import fraud.report  # noqa: F401
import fraud.training  # noqa: F401
from batch_jobs.cli import main


def vmdata_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1])
    raise RuntimeError("no VmData in /proc/self/status")


def _sample(base: int, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], vmdata_kib() - base)
        time.sleep(0.05)


if __name__ == "__main__":
    budget_mib = int(sys.argv[1])
    base = vmdata_kib()
    peak = [0]
    threading.Thread(target=_sample, args=(base, peak), daemon=True).start()
    time.sleep(0.1)  # the sampler's own stack is counted before the cap
    if budget_mib:
        limit = (vmdata_kib() + budget_mib * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    atexit.register(lambda: print(f"VMDATA_GROWTH_MIB={peak[0] // 1024}", flush=True))
    sys.exit(main(sys.argv[2:]))
