"""Progress of long CLI work on stderr, for a person watching a terminal.

Listing a large cluster and translating what it holds can take a while;
one line on stderr, rewritten in place, says what is going on: objects read
per kind and objects per second, then what is being translated. The result
stays on stdout, so pipelines are unaffected, and nothing at all is written
unless stderr is a terminal (``--progress``/``--no-progress`` override that).
Each finished step leaves one summary line, so a terminal keeps the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_CLEAR = "\r\x1b[K"  # back to the line's start and erase it: the next draw replaces it
MIN_REDRAW = 0.1  # seconds between redraws; faster only costs time and flickers


def is_terminal(stream: TextIO) -> bool:
    """Whether *stream* is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """One step at a time (e.g. "reading the cluster"): counts per kind and a rate.

    Disabled, every method does nothing, so callers need no checks.
    """

    def __init__(self, stream: TextIO | None, enabled: bool | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.enabled = stream is not None and (is_terminal(stream) if enabled is None else enabled)
        self._clock = clock
        self._step = ""
        self._counts: dict[str, int] = {}
        self._start = self._last = 0.0
        self._drawn = False

    def start(self, step: str) -> None:
        """Begin *step*, ending the one under way."""
        self.finish()
        self._step, self._counts = step, {}
        self._start = self._clock()
        self._last = float("-inf")
        self._draw(force=True)

    def add(self, kind: str, count: int) -> None:
        """*count* more objects of *kind* done in the current step."""
        if not self.enabled or not count:
            return
        self._counts[kind] = self._counts.get(kind, 0) + count
        self._draw()

    def finish(self) -> None:
        """End the current step with its summary line."""
        if self.enabled and self._step:
            self._write(f"{_CLEAR}{self.line(done=True)}\n")
        self._step, self._drawn = "", False

    def line(self, *, done: bool = False) -> str:
        """The current step: what, how many per kind, how many a second."""
        total = sum(self._counts.values())
        elapsed = max(self._clock() - self._start, 1e-9)
        kinds = ", ".join(f"{k} {n:,}" for k, n in self._counts.items())
        text = f"{self._step}: {total:,} object(s)" + (f" ({kinds})" if kinds else "")
        if total:
            text += f", {total / elapsed:,.0f}/s"
        return text + (f" in {elapsed:.1f} s" if done else " ...")

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if force or now - self._last >= MIN_REDRAW:
            self._last = now
            self._write(f"{_CLEAR}{self.line()}")
            self._drawn = True

    def _write(self, text: str) -> None:
        assert self.stream is not None  # enabled implies a stream
        self.stream.write(text)
        self.stream.flush()


def for_flag(flag: bool | None, stream: TextIO) -> Progress:
    """The Progress ``--progress``/``--no-progress`` (None: neither) ask for on *stream*."""
    return Progress(stream, flag)


__all__ = ["MIN_REDRAW", "Progress", "for_flag", "is_terminal"]
