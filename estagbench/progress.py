"""The overall progress line of a grid: cells done / total, elapsed time, an estimate of the rest.

One plain line per finished cell (no carriage returns, so it reads well in a log file too).
The count lives in shared memory, so cells finished in forked worker processes (``--jobs``)
count as well.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

__all__ = ["GridProgress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class GridProgress:
    """Counts the cells of a grid; :meth:`trained` says one progress line per finished cell."""

    def __init__(self, total: int, say: Callable[[str], None]) -> None:
        self.say = say
        self.start = time.time()
        self._total = multiprocessing.Value("i", total)
        self._done = multiprocessing.Value("i", 0)
        self._trained = multiprocessing.Value("i", 0)

    @property
    def total(self) -> int:
        return int(self._total.value)

    @property
    def done(self) -> int:
        return int(self._done.value)

    def drop(self, n: int) -> None:
        """``n`` cells will not run at all (skipped): out of the total."""
        with self._total.get_lock():
            self._total.value -= n

    def stored(self) -> None:
        """A cell settled by a stored record: done, no time spent, no line."""
        with self._done.get_lock():
            self._done.value += 1

    def trained(self) -> str:
        """A cell that ran (or failed) finished: count it and say the progress line, which is returned."""
        with self._done.get_lock():
            self._done.value += 1
            done = self._done.value
            with self._trained.get_lock():
                self._trained.value += 1
                trained = self._trained.value
        elapsed = time.time() - self.start
        left = self.total - done
        line = f"progress: {done}/{self.total} cells done, {format_seconds(elapsed)} elapsed"
        if left > 0:
            line += f", about {format_seconds(elapsed / trained * left)} left"
        self.say(line)
        return line
