"""Kill -9 at any moment and resume exactly; two workers train as one."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.training.helpers import (
    REPO,
    TINY,
    checkpoint_weights,
    free_ports,
    max_abs_diff,
    run_train,
    train_command,
)

# TINY's --jit_compile=false: the five runs of the kill -9 test would spend most of their time
# compiling. Resuming under XLA, as users train, is the slow Muon kill test's.
RESUME_FLAGS = [
    *TINY,
    "--max_steps=40",
    "--checkpoint_every=2",
    "--log_every=1",
    "--eval_every=10",
    "--deterministic",
    "--dropout=0.1",
    "--seed=5",
]


def _kill_during_run(model_dir, at_step, delay, flags):
    """Starts a run, SIGKILLs it `delay` seconds after it logs step `at_step`; returns the saved step."""
    process = subprocess.Popen(
        train_command(model_dir, *flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        for line in process.stdout:
            if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= at_step:
                break
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=300)
        process.stdout.close()
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.fixture(scope="module")
def resume_flags(tmp_path_factory, shakespeare):
    """RESUME_FLAGS on tiny Shakespeare's first 100,000 characters: every run's start-up (the
    corpus prepared into data/) and final evaluation stay short."""
    corpus = tmp_path_factory.mktemp("corpus") / "head.txt"
    corpus.write_text(shakespeare.text[:100_000], encoding="utf-8")
    return [*RESUME_FLAGS, f"--corpus={corpus}"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, resume_flags):
    model_dir = tmp_path_factory.mktemp("runs") / "straight"
    result = run_train(model_dir, *resume_flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def test_sigkill_at_random_moments_then_rerun_finishes_exactly(uninterrupted, resume_flags, tmp_path):
    started = time.monotonic()
    model_dir = tmp_path / "killed"
    # Strike mid-step, mid-checkpoint and mid-eval; each rerun resumes.
    moments = [(5, 0.0), (13, 0.004), (30, 0.02)]
    reached = [_kill_during_run(model_dir, at_step, delay, resume_flags) for at_step, delay in moments]
    assert all(0 < r < 40 for r in reached) and reached == sorted(reached), reached  # real interruptions
    result = run_train(model_dir, *resume_flags)
    assert result.returncode == 0, result.stderr[-3000:]

    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 41))  # no gaps, no repeats
    assert [r["step"] for r in records if r["kind"] == "eval"] == [10, 20, 30, 40]
    assert [r["kind"] for r in records].count("final") == 1
    straight = [json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    # Deterministic: the same losses, line for line, as the run that was never killed.
    assert [r.get("loss") for r in records] == [r.get("loss") for r in straight]
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] == 40
    # The run's clock resumes from the checkpoint too: it only grows, within this test's time.
    elapsed = [r["elapsed"] for r in records if r["kind"] == "train"]
    assert elapsed[0] > 0 and elapsed == sorted(elapsed)
    assert elapsed[-1] <= results["wall_seconds"] < time.monotonic() - started
    # ... and the same final weights (dropout's RNG state and the data position resumed too).
    killed_w = checkpoint_weights(model_dir / "checkpoints")
    straight_w = checkpoint_weights(uninterrupted / "checkpoints")
    assert max_abs_diff(killed_w, straight_w) == 0.0


@pytest.mark.slow  # the kill -9 test above is the default suite's resume check; this one adds the options
def test_muon_wsd_and_the_modern_model_resume_exactly_after_sigkill(tmp_path, shakespeare):
    # Muon's momenta (and AdamW's moments inside it) are checkpointed; WSD is a function of the step.
    corpus = tmp_path / "head.txt"  # a short corpus keeps the three runs' start-up and final eval short
    corpus.write_text(shakespeare.text[:60_000])
    flags = [
        *RESUME_FLAGS,
        "--jit_compile=auto",  # XLA, as users train
        f"--corpus={corpus}",
        "--sample_tokens=0",
        "--max_steps=16",
        "--warmup_steps=4",
        "--optimizer=muon",
        "--schedule=wsd",
        "--decay_fraction=0.5",
        "--position=rope",
        "--norm=rmsnorm",
        "--use_qk_norm",
        "--mlp=relu2",
        "--tie_embeddings=false",
        "--zero_init_residual",
        "--logit_softcap=30",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    result = run_train(straight, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    reached = _kill_during_run(killed, 9, 0.0, flags)
    assert 0 < reached < 16, reached
    result = run_train(killed, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(step {reached})" in result.stdout

    def losses(model_dir):
        records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"], r["lr"]) for r in records if r["kind"] == "train"]

    assert losses(killed) == losses(straight) and len(losses(straight)) == 16
    for prefix in ("model/", "optimizer/"):
        assert (
            max_abs_diff(
                checkpoint_weights(killed / "checkpoints", prefix),
                checkpoint_weights(straight / "checkpoints", prefix),
            )
            == 0.0
        )


@pytest.mark.slow  # the kill -9 test above strikes mid-checkpoint too, at random moments
def test_half_written_checkpoint_still_resumes(uninterrupted, resume_flags, tmp_path):
    """A save cut off before its index file lands: the state file still names the last whole one."""
    model_dir = tmp_path / "torn"
    # All 40 steps are in the 100-step warm-up, so stopping at 4 changes no learning rate.
    assert run_train(model_dir, *resume_flags, "--max_steps=4").returncode == 0
    checkpoints = model_dir / "checkpoints"
    # What a kill mid-save leaves: a temporary data shard of the next checkpoint, no index, state untouched.
    (checkpoints / "ckpt-6_temp").mkdir()
    (checkpoints / "ckpt-6_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\x00" * 100)
    (checkpoints / "ckpt-6.data-00000-of-00001").write_bytes(b"\x01" * 50)
    result = run_train(model_dir, "--max_steps=40")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout and "(step 4)" in result.stdout
    assert (
        max_abs_diff(checkpoint_weights(checkpoints), checkpoint_weights(uninterrupted / "checkpoints"))
        == 0.0
    )


def test_two_workers_train_as_one_process(tmp_path):
    flags = [
        *TINY,
        "--max_steps=6",
        "--checkpoint_every=6",
        "--eval_every=6",
        "--log_every=1",
        "--deterministic",
        "--dropout=0",
        "--seed=9",
        "--learning_rate=3e-3",
    ]
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "two"
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        workers.append(
            subprocess.Popen(
                train_command(model_dir, *flags, "--strategy=multi_worker"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env=env,
            )
        )
    try:
        outputs = [w.communicate(timeout=420) for w in workers]
    finally:
        for w in workers:  # a missing peer fails the test instead of hanging it
            if w.poll() is None:
                w.kill()
                w.wait()
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outputs]
    assert "2 replica(s)" in outputs[0][0]

    one = tmp_path / "one"
    result = run_train(one, *flags)
    assert result.returncode == 0, result.stderr[-3000:]

    chief = checkpoint_weights(model_dir / "checkpoints")
    worker = checkpoint_weights(model_dir / "workers" / "1" / "checkpoints")
    single = checkpoint_weights(one / "checkpoints")
    assert max_abs_diff(chief, worker) == 0.0  # the replicas agree exactly
    # One process sums the same global batch's gradients in another order: the weights (at
    # most ~1, the layer-norm scales) agree to float32 rounding, a few ulps of 1.
    assert max_abs_diff(chief, single) <= 16 * np.finfo(np.float32).eps
