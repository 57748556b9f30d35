"""The one progress bar: conversion (make_tfrecords), training epochs and evaluation.

mode 'bar' redraws one line (terminals); 'lines' prints a line every `every_steps`
updates and/or every `every_seconds` (log files, CI); 'none' is silent; 'auto' is
'bar' on a terminal and 'lines' otherwise. The last update (done >= total, or
final=True) always prints.
"""
import math
import sys
import time

BAR_WIDTH = 25
REDRAW_SECONDS = 0.2  # a terminal bar faster than this only costs time


def duration(seconds):
    """h:mm:ss, or '?' when unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """done/total, a bar, the caller's values, items/s and ETA (or the time taken at the end).

    total None: unknown (evaluation does not count the records first); no bar,
    no ETA, and only final=True ends the line. items_per_update: what one unit
    of `done` is worth in `unit`s (training counts steps of batch_size images).
    skip_first: measure the rate from the first update on (training: the first
    step includes tracing and compilation), not from construction.
    """

    def __init__(self, total, *, title="", unit="img", items_per_update=1, mode="auto",
                 every_steps=None, every_seconds=None, skip_first=False, stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ValueError(f"progress mode {mode!r}: expected auto, bar, lines or none")
        self.total, self.title, self.unit, self.mode = total, title, unit, mode
        self.items_per_update = items_per_update
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.skip_first = skip_first
        self.start, self.done_at_start = time.perf_counter(), 0
        self.last_print, self.updates, self.finished = -math.inf, 0, False

    def _due(self, done, now, final):
        if final:
            return True
        if self.mode == "bar":
            return now - self.last_print >= REDRAW_SECONDS
        by_steps = bool(self.every_steps) and done % self.every_steps == 0
        by_time = bool(self.every_seconds) and now - self.last_print >= self.every_seconds
        return by_steps or by_time

    def update(self, done, final=None, **values):
        """Reports `done` of total; values (loss=..., acc=...) are shown as given.

        After the final line, further updates print nothing (a caller may both
        reach the total and then say final=True).
        """
        if self.finished:
            return
        now = time.perf_counter()
        self.updates += 1
        if self.skip_first and self.updates == 1:
            self.start, self.done_at_start = now, done
        if final is None:
            final = self.total is not None and done >= self.total
        if self.mode == "none" or not self._due(done, now, final):
            return
        self.last_print, self.finished = now, final
        self.stream.write(self.line(done, now, final, values))
        self.stream.flush()

    def line(self, done, now, final, values):
        elapsed = now - self.start
        rate = (done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            parts, eta = [f"{self.title} {done}".strip()], math.inf
        else:
            eta = (self.total - done) / rate if rate > 0 else math.inf
            filled = int(BAR_WIDTH * min(done, self.total) / max(self.total, 1))
            bar = ("=" * filled + (">" if filled < BAR_WIDTH else "")
                   + "." * max(0, BAR_WIDTH - filled - 1))
            parts = [f"{self.title} {done}/{self.total} [{bar}]".strip()]
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()]
        parts.append(f"{rate * self.items_per_update:.1f} {self.unit}/s")
        if final:
            parts.append(f"took {duration(elapsed)}")
        elif self.total is not None:
            parts.append(f"ETA {duration(eta)}")
        text = "  ".join(parts)
        if self.mode == "bar":
            return "\r" + text + ("\n" if final else "")
        return text + "\n"
