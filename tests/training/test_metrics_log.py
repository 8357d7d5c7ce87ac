import json

from lm_keras.training.metrics_log import MetricsLog


def _lines(*records):
    return "".join(json.dumps(r) + "\n" for r in records)


def test_resume_keeps_exactly_what_the_checkpoint_covers(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        _lines(
            {"kind": "train", "step": 10},
            {"kind": "eval", "step": 10},
            {"kind": "train", "step": 20},
            {"kind": "final", "step": 10},
        )
        + '{"kind": "train", "st'
    )  # cut off by a kill
    log = MetricsLog(path, resume_step=10)
    log.write(kind="train", step=20, loss=1.5)
    log.close()
    assert [(r["kind"], r["step"]) for r in MetricsLog.read(path)] == [
        ("train", 10),
        ("eval", 10),
        ("train", 20),
    ]
    assert MetricsLog.read(path)[-1]["loss"] == 1.5


def test_fresh_run_starts_empty_and_disabled_log_writes_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines({"kind": "train", "step": 5}))
    MetricsLog(path, resume_step=0).close()
    assert path.read_text() == ""
    other = tmp_path / "worker.jsonl"
    log = MetricsLog(other, resume_step=0, enabled=False)
    log.write(kind="train", step=1)
    log.sync()
    assert not other.exists()
