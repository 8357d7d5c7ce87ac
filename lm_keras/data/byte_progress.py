"""ByteProgress: the progress lines of work that reads bytes: MB read, MB/s, tokens, time left."""

import time

from lm_keras.progress import duration

PROGRESS_SECONDS = 2.0


class ByteProgress:
    """Logs a line every `PROGRESS_SECONDS` at most, and one when the work is done.

    Args:
        log: where the lines go.
        label: what starts each line ("prepare | scan  ").
        total: the bytes the work reads in all, or None where that is not known.
        done: the bytes read before this run (a resumed one), not counted in its rate.

    Example:
        progress = ByteProgress(print, "prepare | encode", total)
        progress.update(bytes_read, tokens)   # now and then
        progress.done(bytes_read, tokens)     # "... | took 0m12s"
    """

    def __init__(self, log, label, total, done=0):
        self.log, self.label, self.total = log, label, total
        self.start, self.start_done = time.monotonic(), done
        self.last = self.start

    def line(self, done, tokens, finished=False):
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = (done - self.start_done) / elapsed
        text = f"{self.label} {done / 1e6:>10,.1f}"
        text += f" / {self.total / 1e6:,.1f} MB" if self.total else " MB"
        text += f" | {rate / 1e6:,.1f} MB/s"
        if tokens is not None:
            text += f" | {tokens:,} tokens"
        if finished:
            text += f" | took {duration(elapsed)}"
        elif self.total and rate > 0:
            text += f" | eta {duration(max(self.total - done, 0) / rate)}"
        return text

    def update(self, done, tokens=None):
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.log(self.line(done, tokens))

    def done(self, done, tokens=None):
        self.log(self.line(done, tokens, finished=True))
