"""--grad_accum_steps=N: the step of N micro-batches of B windows is the step of one batch of N B."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lm_keras import model_dir as md
from lm_keras.config import Config, TrainConfig
from lm_keras.errors import UserError
from lm_keras.models import build_model
from lm_keras.training.trainer import Trainer
from tests.test_commands import run_until_exit
from tests.training.helpers import REPO, checkpoint_weights, max_abs_diff

STEPS = 3
# Tiny runs on a 30,000-character slice; a learning rate and a clipping norm small enough that
# Adam's steps stay smooth functions of the gradient, and clipping acts at every step (the
# tiny model's first gradient has norm 0.9), so clipping each micro-batch instead of the sum would show.
BASE = dict(
    tokenizer="char",
    num_layers=1,
    num_heads=2,
    hidden_dim=32,
    seq_len=16,
    max_steps=STEPS,
    learning_rate=1e-3,
    min_learning_rate=1e-4,
    warmup_steps=0,
    grad_clip=0.1,
    dropout=0.0,
    eval_every=1000,
    eval_batches=1,
    eval_tokens=64,
    log_every=1,
    checkpoint_every=1000,
    sample_tokens=0,
    seed=3,
    jit_compile="false",
)
# Two float32 sums of the same per-example gradients in another order agree to rounding: the
# weights (at most ~1) after a few steps to some ulps of 1.
TOLERANCE = 64 * np.finfo(np.float32).eps


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, shakespeare):
    from lm_keras.data.prepare import prepare

    root = tmp_path_factory.mktemp("grad_accum")
    corpus = root / "head.txt"
    corpus.write_text(shakespeare.text[:30_000], encoding="utf-8")
    prepare(str(corpus), root / "data", tokenizer="char", log=lambda line: None)
    yield root / "data"
    keras.mixed_precision.set_global_policy("float32")  # what the float16 run set


def _train(model_dir, dataset_dir, **fields):
    """Trains in-process as the command does; returns (trainer, weights, per-step losses, log)."""
    lines = []
    config = Config().replace(**{**BASE, "corpus": str(dataset_dir), **fields})
    with md.hold(model_dir):
        config, dataset = md.prepare_run(model_dir, config, log=lines.append)
        trainer = Trainer(config, dataset, model_dir, log=lines.append)
        trainer.run()
    records = [json.loads(line) for line in (model_dir / md.METRICS).read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    return trainer, checkpoint_weights(model_dir / "checkpoints"), np.array(losses), lines


def _moved(trainer):
    """How far the run's steps moved the weights from where the seed started them."""
    keras.utils.set_random_seed(trainer.config.train.seed)
    initial = build_model(trainer.config.model)
    return max(
        float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(trainer.model.weights, initial.weights)
    )


def test_n_micro_batches_of_b_train_as_one_batch_of_n_b(tmp_path, dataset_dir):
    whole, whole_weights, whole_losses, _ = _train(tmp_path / "whole", dataset_dir, batch_size=8)
    accum, accum_weights, accum_losses, lines = _train(
        tmp_path / "accum", dataset_dir, batch_size=2, grad_accum_steps=4
    )
    # The same windows and the same mean loss at every step, and the same weights after them.
    assert len(accum_losses) == len(whole_losses) == STEPS
    np.testing.assert_allclose(accum_losses, whole_losses, rtol=1e-6)
    diff, moved = max_abs_diff(accum_weights, whole_weights), _moved(accum)
    print(f"max |accumulated - whole| = {diff:.3g} after the weights moved {moved:.3g}")
    assert diff <= TOLERANCE and moved > 100 * TOLERANCE
    # A step's speed counts every token of its four micro-batches.
    assert accum.global_tokens == whole.global_tokens == 8 * 16
    assert any(line.endswith("| 4 micro-batches a step") for line in lines)


class _Trainer(Trainer):
    """The trainer under a strategy of the test's (2 logical CPUs stand for 2 GPUs)."""

    def __init__(self, *args, strategy=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.given_strategy = strategy

    def _setup(self):
        super()._setup()
        self.strategy = self.given_strategy or self.strategy


def first_step_gradient(model_dir, dataset_dir, strategy=None, **fields):
    """(loss, {variable index: gradient}) of a run's first step, read off an SGD step of learning
    rate 1 (wrapped in the loss scale for float16), which moves each weight by its gradient."""
    config = Config().replace(**{**BASE, "corpus": str(dataset_dir), "grad_clip": 0.0, **fields})
    config, dataset = md.prepare_run(model_dir, config, log=lambda line: None)
    trainer = _Trainer(config, dataset, model_dir, log=lambda line: None, strategy=strategy)
    trainer.prepare()
    variables = trainer.model.trainable_variables
    with trainer.strategy.scope():
        trainer.optimizer = keras.optimizers.SGD(1.0)
        if config.train.mixed_precision == "float16":
            trainer.optimizer = keras.optimizers.LossScaleOptimizer(trainer.optimizer)
        trainer.optimizer.build(variables)
    before = [v.numpy() for v in variables]
    loss = float(trainer.make_train_step()(next(trainer.train_batches(0))))
    # Keyed by place, not path: Keras numbers layer names per process (dense_3, transformer_lm_1).
    return loss, {i: b - v.numpy() for i, (v, b) in enumerate(zip(variables, before))}


def relative_difference(a, b):
    """max |a - b| over the largest |b|, across every variable."""
    assert a.keys() == b.keys() and a
    scale = max(float(np.max(np.abs(g))) for g in b.values())
    assert scale > 0  # a real gradient, not a skipped step
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a) / scale


@pytest.mark.parametrize(
    "fields, tolerance",
    [
        (dict(), 1e-5),
        (dict(jit_compile="true"), 1e-5),  # the whole step, its while loop too, in XLA
        # float16 activations: the loss scale multiplies each micro-batch's gradient and the
        # optimizer divides the sum once; the batches of 8 and of 2 round the activations alike.
        (dict(mixed_precision="float16"), 1e-3),
        (dict(model="documented_lstm", embedding_dim=16, dense_units=16), 1e-5),  # one-hot y (B, V)
    ],
    ids=["float32", "xla", "float16", "documented_lstm"],
)
def test_the_gradient_of_n_micro_batches_is_the_gradient_of_their_batch(
    tmp_path, dataset_dir, fields, tolerance
):
    whole_loss, whole = first_step_gradient(tmp_path / "whole", dataset_dir, batch_size=8, **fields)
    accum_loss, accum = first_step_gradient(
        tmp_path / "accum", dataset_dir, batch_size=2, grad_accum_steps=4, **fields
    )
    difference = relative_difference(accum, whole)
    print(f"{fields}: gradients differ by {difference:.3g} of the largest; losses {accum_loss} {whole_loss}")
    assert accum_loss == pytest.approx(whole_loss, rel=1e-6) and difference <= tolerance


_MIRRORED = textwrap.dedent(
    """
    import json, pathlib, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tests.training.test_grad_accum import first_step_gradient, relative_difference

    root, data = pathlib.Path(sys.argv[1]), sys.argv[2]
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    loss, whole = first_step_gradient(root / "whole", data, batch_size=8)
    results = {}
    runs = {"replicas": dict(batch_size=8), "accum": dict(batch_size=4, grad_accum_steps=2)}
    for name, fields in runs.items():
        two_loss, two = first_step_gradient(root / name, data, strategy=mirrored, **fields)
        results[name] = [two_loss / loss - 1, relative_difference(two, whole)]
    print(json.dumps(results))
    """
)


def test_two_replicas_each_accumulating_their_share_train_as_one(tmp_path, dataset_dir):
    # Its own process: the 2 logical CPUs must be set before TensorFlow starts.
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(tmp_path), str(dataset_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    print(results)
    for loss_difference, gradient_difference in results.values():
        assert abs(loss_difference) <= 1e-6 and gradient_difference <= 1e-5


def test_grad_accum_steps_must_be_a_positive_int_before_tensorflow_loads():
    stdout, stderr = run_until_exit(["lm_keras.train", "--model_dir=/tmp/x", "--grad_accum_steps=0"])
    assert stdout == "EXIT 2 False"
    assert stderr.splitlines() == [
        "error: --grad_accum_steps must be a positive int; received grad_accum_steps=0"
    ]


def test_the_config_keeps_grad_accum_steps_and_older_runs_read_as_one():
    config = Config().replace(grad_accum_steps=4, batch_size=3)
    assert Config.from_json(config.to_json()).train.grad_accum_steps == 4
    assert Config.from_dict({"train": {"batch_size": 3}}).train.grad_accum_steps == 1  # a run from before
    for bad in (0, -2, 1.5, True):
        with pytest.raises(
            UserError, match=f"--grad_accum_steps must be a positive int; received grad_accum_steps={bad!r}"
        ):
            TrainConfig(grad_accum_steps=bad)
