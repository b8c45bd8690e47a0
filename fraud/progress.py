"""Progress bars: the one place that decides when a bar is drawn.

A bar is drawn when the caller asks for one *and* its stream is a terminal (tqdm's
``disable=None``): a batch job's or CI's log, or a pipe, gets no bar frames. Log lines
written while a bar is on screen go through ``tqdm.write`` (the ``fraud`` command wraps
each command in ``logging_redirect_tqdm``), so a log line never lands inside a bar.
"""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``enabled`` is false or the output is not a terminal."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
