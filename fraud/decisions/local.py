"""The local decision log: an append-only JSON Lines file per process and day
(``<root>/date=YYYY-MM-DD/wal-<id>.jsonl``), which ``compact_decisions`` later turns into
one Parquet file per day.

Why a write-ahead JSON Lines file rather than a Parquet file per write:
- durable at once: a write appends whole lines with one ``write`` and ``fsync``s before it
  returns, so a record the API answered survives the process (and the machine) dying later;
- a crash mid-write leaves at most an unterminated last line, which the reader drops (a
  line counts only once its newline is written); after a failed write the log moves to a
  new file, so nothing is ever appended behind such a fragment;
- one file per process and day, not a file per request (Parquet per write would leave
  thousands of tiny files a day and needs pyarrow, which the serving image lacks);
- compaction writes the day's Parquet file (temp name + rename) before deleting the JSON
  Lines it came from; a crash in between leaves both, and the reader keeps one record per
  transaction id, so neither order loses or doubles a record.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

from .log import DecisionLog, DecisionLogError, record_line

PARTITION = "date="
WAL_PREFIX = "wal-"
WAL_SUFFIX = ".jsonl"


class LocalDecisionLog(DecisionLog):
    def __init__(self, root: str | Path, fsync: bool = True):
        self.root = Path(root)
        self.uri = str(self.root)
        self.fsync = fsync
        self._lock = threading.Lock()  # FastAPI runs requests on a thread pool
        self._day: str | None = None
        self._fd: int | None = None
        self._name = self._new_name()

    @staticmethod
    def _new_name() -> str:
        return f"{WAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}{WAL_SUFFIX}"

    def _file(self, day: str) -> int:
        if self._day != day:  # the day rolled over: yesterday's file is closed for good
            self._close()
            folder = self.root / f"{PARTITION}{day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(folder / self._name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._day = day
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._day = None, None

    def write(self, records: list[dict]) -> None:
        by_day: dict[str, list[str]] = {}
        for record in records:
            by_day.setdefault(record["scored_at"][:10], []).append(record_line(record))
        with self._lock:
            for day, lines in sorted(by_day.items()):
                data = memoryview("".join(lines).encode())
                try:
                    fd = self._file(day)
                    while data:
                        data = data[os.write(fd, data):]
                    if self.fsync:
                        os.fsync(fd)
                except OSError as exc:
                    # a part may have been written: never append behind it
                    self._close()
                    self._name = self._new_name()
                    raise DecisionLogError(f"decision log {self.uri}: {exc}", records) from exc

    def close(self) -> None:
        with self._lock:
            self._close()
