"""ByteProgress: MB read of the total, MB/s, tokens, and the time taken or left."""

from lm_keras.data import byte_progress
from lm_keras.data.byte_progress import ByteProgress


def test_lines_while_running_and_when_done(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(byte_progress.time, "monotonic", lambda: clock[0])
    lines = []
    progress = ByteProgress(lines.append, "prepare | encode", 300e6, done=100e6)
    clock[0] += 1.0
    progress.update(150e6, 1234)  # under PROGRESS_SECONDS since the start: no line
    clock[0] += 1.5
    progress.update(200e6, 5678)
    clock[0] += 2.5
    progress.done(300e6, 9999)
    assert lines == [
        "prepare | encode      200.0 / 300.0 MB | 40.0 MB/s | 5,678 tokens | eta 0m02s",
        "prepare | encode      300.0 / 300.0 MB | 40.0 MB/s | 9,999 tokens | took 0m05s",
    ]


def test_an_unknown_total_gives_no_eta(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(byte_progress.time, "monotonic", lambda: clock[0])
    lines = []
    progress = ByteProgress(lines.append, "prepare | scan  ", None)
    clock[0] += 3.0
    progress.update(6e6)
    progress.done(6e6)
    assert lines == [
        "prepare | scan          6.0 MB | 2.0 MB/s",
        "prepare | scan          6.0 MB | 2.0 MB/s | took 0m03s",
    ]
