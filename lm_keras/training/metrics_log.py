"""metrics.jsonl: one JSON object per log or eval line, consistent with the checkpoints."""

import json
import os
import pathlib

from lm_keras.files import write_text_atomic


class MetricsLog:
    """Appends records to metrics.jsonl; on resume, keeps exactly the lines the checkpoint covers.

    A resumed run restarts after step `resume_step`, so lines of later steps (written
    after the last checkpoint) are dropped, as are `final` lines and a half-written
    last line: rerunning then writes each step's line exactly once.

    Args:
        path: the metrics.jsonl file.
        resume_step: the step of the restored checkpoint (0 for a fresh run).
        enabled: False on non-chief workers of a distributed run (writes nothing).
    """

    def __init__(self, path, resume_step, enabled=True):
        self.path = pathlib.Path(path)
        self.enabled = enabled
        if not enabled:
            return
        kept = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True):
                if not line.endswith("\n"):
                    break  # a line cut off by a kill
                record = json.loads(line)
                if record["step"] <= resume_step and record["kind"] != "final":
                    kept.append(line)
        write_text_atomic(self.path, "".join(kept))
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, **record):
        if self.enabled:
            self._file.write(json.dumps(record, sort_keys=True) + "\n")
            self._file.flush()

    def sync(self):
        """Makes every line so far durable; called before each checkpoint."""
        if self.enabled:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self):
        if self.enabled:
            self._file.close()

    @staticmethod
    def read(path):
        return [json.loads(line) for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
