"""The trainer: one loop for every strategy, compiled steps, evaluation, checkpoints.

Keras 3's `model.fit` is not reliable under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so the trainer owns its loop: `strategy.run` on a
`tf.function` step, used the same way by the default, mirrored, multi-worker and
TPU strategies.
"""

import dataclasses
import math
import pathlib
import platform
import time

import keras
import numpy as np
import tensorflow as tf

import lm_keras
from lm_keras import tokenizers
from lm_keras.data import check_windows, eval_dataset, first_eval_target, load_corpus, train_dataset
from lm_keras.errors import UserError
from lm_keras.models import build_model
from lm_keras.training import model_dir as md
from lm_keras.training.distribution import make_strategy, resolve_jit, worker_id
from lm_keras.training.metrics_log import MetricsLog
from lm_keras.training.optimizers import make_optimizer

EVAL_SEED = 2024  # the periodic estimate uses the same windows at every eval
LN2 = math.log(2.0)


class TrainingDiverged(UserError):
    """The loss stopped being finite; the last good checkpoint is kept."""


def view_of(model_kind):
    """The pipeline view a model family trains on."""
    return "many_to_one" if model_kind == "documented_lstm" else "next_token"


def per_example_loss(view, y, outputs):
    """Negative log-likelihood in nats: (B, T) for next_token, (B,) for many_to_one.

    next_token models return logits; the documented model returns softmax
    probabilities and is scored with categorical cross-entropy, as documented.
    """
    outputs = tf.cast(outputs, tf.float32)
    if view == "next_token":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=outputs)
    return keras.losses.categorical_crossentropy(y, outputs)


def make_eval_step(model, view, jit):
    """A compiled function (x, y, w) -> (sum of w * nll, sum of w)."""

    @tf.function(jit_compile=jit)
    def eval_step(x, y, w):
        nll = per_example_loss(view, y, model(x, training=False))
        return tf.reduce_sum(nll * w), tf.reduce_sum(w)

    return eval_step


def evaluate(eval_step, dataset):
    """(total nats, number of targets) over a dataset of (x, y, w) batches."""
    total, count = 0.0, 0.0
    for x, y, w in dataset:
        s, n = eval_step(x, y, w)
        total += float(s)
        count += float(n)
    return total, count


def with_unit_weights(dataset, view):
    """(x, y) batches -> (x, y, w) with w = 1 for every target."""
    if view == "next_token":
        return dataset.map(lambda x, y: (x, y, tf.ones(tf.shape(y), tf.float32)))
    return dataset.map(lambda x, y: (x, y, tf.ones(tf.shape(y)[:1], tf.float32)))


def full_evaluation(eval_step, tokenizer, ids, text, *, view, seq_len, batch_size, vocab_size):
    """Loss over every target of a split: nats/token, perplexity and bits/char.

    Bits per character are the total bits over the characters the predicted tokens
    cover, so character and SentencePiece models compare on one scale.
    """
    ds = eval_dataset(ids, seq_len=seq_len, batch_size=batch_size, view=view, vocab_size=vocab_size)
    total, count = evaluate(eval_step, ds)
    chars = len(text) - len(tokenizer.decode(ids[: first_eval_target(view, seq_len)]))
    return {
        "val_loss": total / count,
        "val_perplexity": math.exp(total / count),
        "val_bits_per_char": total / LN2 / chars,
        "val_tokens": int(count),
        "val_chars": chars,
    }


def library_versions():
    import sentencepiece
    import tensorflow_text

    return {
        "lm_keras": lm_keras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_text": tensorflow_text.__version__,
        "sentencepiece": sentencepiece.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class Trainer:
    """Trains the model of a resolved `Config` into a model directory.

    Rerunning with the same model directory resumes from the latest checkpoint:
    weights, optimizer, step, dropout RNG state and (through the step) the data
    position, so an interrupted run finishes exactly where an uninterrupted one would.

    Args:
        config: the resolved `lm_keras.config.Config`.
        model_dir: the model directory (see `lm_keras.training.model_dir`).
        preset: the name of the preset the config started from, kept in config.json.
        log: where progress lines go (default: print to stdout).

    Example:
        >>> from lm_keras.config import preset
        >>> results = Trainer(preset("shakespeare_char_cpu"), "runs/shakespeare").run()
    """

    def __init__(self, config, model_dir, preset=None, log=None):
        self.config = config
        self.model_dir = pathlib.Path(model_dir)
        self.preset = preset
        self.log = log or (lambda line: print(line, flush=True))

    # ----------------------------------------------------------------- set-up

    def _setup(self):
        tc = self.config.train
        if tc.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(tc.seed)
        policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
        keras.mixed_precision.set_global_policy(policy[tc.mixed_precision])
        self.strategy = make_strategy(tc.strategy, tc.tpu)
        self.is_chief, task_id = worker_id(self.strategy)
        # Non-chief workers of a multi-worker run write their checkpoints aside.
        self.work_dir = self.model_dir if self.is_chief else self.model_dir / "workers" / str(task_id)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def _load_data(self):
        cfg = self.config
        corpus = load_corpus(cfg.data.corpus)
        if (self.model_dir / md.CONFIG).is_file():
            _, raw = md.read_config(self.model_dir)
            if raw["corpus"]["sha256"] != corpus.sha256:
                raise UserError(
                    f"corpus {cfg.data.corpus!r} changed since this run started in {self.model_dir} "
                    f"(sha256 {raw['corpus']['sha256'][:12]}... then, {corpus.sha256[:12]}... now): "
                    "restore the text or start a new --model_dir"
                )
        train_text, val_text = corpus.split(cfg.data.val_fraction)
        tokenizer_dir = self.model_dir / md.TOKENIZER
        if tokenizer_dir.is_dir():
            tokenizer = tokenizers.load(tokenizer_dir)
        elif cfg.train.init_from:
            tokenizer = tokenizers.load(pathlib.Path(cfg.train.init_from) / md.TOKENIZER)
        else:
            tokenizer = tokenizers.train(
                cfg.data.tokenizer, train_text, vocab_size=cfg.data.vocab_size or None
            )
        if self.is_chief and not tokenizer_dir.is_dir():
            md.save_tokenizer_atomic(tokenizer, self.model_dir)
        self.config = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size)
        )
        self.corpus, self.tokenizer, self.val_text = corpus, tokenizer, val_text
        self.train_ids = tokenizer.encode(train_text)
        self.val_ids = tokenizer.encode(val_text)
        seq_len = self.config.model.seq_len
        check_windows(self.train_ids, seq_len, "training", corpus.name)
        check_windows(self.val_ids, seq_len, "validation", corpus.name)

    def _write_config(self):
        if not self.is_chief:
            return
        c = self.corpus
        md.write_json_atomic(
            self.model_dir / md.CONFIG,
            {
                **self.config.to_dict(),
                "preset": self.preset,
                "corpus": {
                    "name": c.name,
                    "origin": c.origin,
                    "sha256": c.sha256,
                    "characters": len(c.text),
                    "train_tokens": len(self.train_ids),
                    "val_tokens": len(self.val_ids),
                },
                "versions": library_versions(),
            },
        )

    def _build(self):
        cfg, tc = self.config, self.config.train
        with self.strategy.scope():
            self.model = build_model(cfg.model)
            self.optimizer = make_optimizer(
                tc, self.model.trainable_variables, self.strategy.num_replicas_in_sync
            )
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.wall_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_seconds")
        # Dropout's RNG state lives in Keras seed generators, which tf.train.Checkpoint
        # does not see through the layers: save their variables explicitly.
        rng = [v.value for v in self.model.non_trainable_variables if "seed_generator" in v.path]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            wall_seconds=self.wall_seconds,
            rng=rng,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.work_dir / md.CHECKPOINTS), max_to_keep=tc.keep_checkpoints
        )
        self.jit = resolve_jit(tc.jit_compile, cfg.model.model)
        self.view = view_of(cfg.model.model)
        # Input tokens per global batch, and the targets they train on: every position for
        # the sequence models, one per window for the documented LSTM.
        self.global_tokens = tc.batch_size * cfg.model.seq_len
        self.global_targets = self.global_tokens if self.view == "next_token" else tc.batch_size

    def _restore(self):
        """Returns the step to start after: the latest checkpoint's, or 0."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            self.log(f"resuming from {latest} (step {int(self.step.numpy())})")
            return int(self.step.numpy())
        init_from = self.config.train.init_from
        if init_from:
            source = md.latest_checkpoint(init_from)
            if source is None:
                raise UserError(f"--init_from={init_from} holds no checkpoint: train that run first")
            tf.train.Checkpoint(model=self.model).restore(
                source
            ).expect_partial().assert_existing_objects_matched()
            self.log(f"fine-tuning from {source}: weights only, a fresh optimizer")
        return 0

    # ----------------------------------------------------------- compiled steps

    def make_train_step(self):
        """The compiled step: a distributed batch in, the global mean loss out (it updates the model)."""
        tc = self.config.train
        strategy, model, optimizer = self.strategy, self.model, self.optimizer
        replicas = strategy.num_replicas_in_sync
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        global_count = float(self.global_targets)
        variables = model.trainable_variables
        view = self.view

        def loss_and_grads(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(per_example_loss(view, y, model(x, training=True))) / global_count
                scaled = optimizer.scale_loss(loss) if loss_scaled else loss
            return loss, [tf.convert_to_tensor(g) for g in tape.gradient(scaled, variables)]

        # One replica: XLA compiles the whole step, optimizer update included.
        # Several: XLA compiles the gradient; the all-reduce stays outside it.
        whole = self.jit and replicas == 1
        if self.jit and not whole:
            loss_and_grads = tf.function(loss_and_grads, jit_compile=True)

        def replica_step(x, y):
            loss, grads = loss_and_grads(x, y)
            if replicas > 1 and tc.grad_clip > 0:
                context = tf.distribute.get_replica_context()
                grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
                limit = tc.grad_clip * (optimizer.scale if loss_scaled else 1.0)
                grads, _ = tf.clip_by_global_norm(grads, limit)
                grads = [g / replicas for g in grads]  # the optimizer sums the replicas again
            optimizer.apply(grads, variables)
            return loss

        @tf.function(jit_compile=whole)
        def train_step(batch):
            per_replica = strategy.run(replica_step, args=batch)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        return train_step

    # -------------------------------------------------------------- evaluation

    def _estimate(self, eval_step, ids):
        """Mean loss over `eval_batches` fixed random windows of a split."""
        tc, mc = self.config.train, self.config.model
        ds = train_dataset(
            ids,
            seq_len=mc.seq_len,
            batch_size=tc.batch_size,
            seed=EVAL_SEED,
            view=self.view,
            vocab_size=mc.vocab_size,
            num_steps=tc.eval_batches,
        )
        total, count = evaluate(eval_step, with_unit_weights(ds, self.view))
        return total / count

    def evaluate_full(self, eval_step):
        mc = self.config.model
        return full_evaluation(
            eval_step,
            self.tokenizer,
            self.val_ids,
            self.val_text,
            view=self.view,
            seq_len=mc.seq_len,
            batch_size=self.config.train.batch_size,
            vocab_size=mc.vocab_size,
        )

    # --------------------------------------------------------------------- run

    def prepare(self):
        """Everything before the loop: devices, data, tokenizer, model, optimizer, restore.

        Returns the step to continue after. Afterwards `model`, `optimizer`, `strategy`,
        `tokenizer`, `train_ids`, `val_ids` and `make_train_step()` are ready, which is
        what notebooks and benchmarks use to look inside a run.
        """
        self._setup()
        self._load_data()
        self._write_config()
        self._build()
        return self._restore()

    def run(self):
        """Trains to `max_steps` (resuming if possible); returns the results dict."""
        start = self.prepare()
        cfg, tc, mc = self.config, self.config.train, self.config.model
        metrics = MetricsLog(self.model_dir / md.METRICS, start, enabled=self.is_chief)
        writer = (
            tf.summary.create_file_writer(str(self.model_dir / md.LOGS))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )
        eval_step = make_eval_step(self.model, self.view, self.jit)
        self.log(
            f"{mc.model}: {self.model.count_params():,} parameters | "
            f"vocab {mc.vocab_size} ({cfg.data.tokenizer}) | "
            f"corpus {self.corpus.name}: {len(self.train_ids):,} train / {len(self.val_ids):,} val tokens | "
            f"{self.strategy.num_replicas_in_sync} replica(s) | jit={self.jit} | {tc.mixed_precision}"
        )
        train_seconds, train_steps = 0.0, 0
        if start < tc.max_steps:
            dist_ds = self.strategy.distribute_datasets_from_function(
                lambda ctx: train_dataset(
                    self.train_ids,
                    seq_len=mc.seq_len,
                    batch_size=tc.batch_size,
                    seed=tc.seed,
                    view=self.view,
                    vocab_size=mc.vocab_size,
                    start_step=start,
                    num_steps=tc.max_steps - start,
                    input_context=ctx,
                )
            )
            batches = iter(dist_ds)
            train_step = self.make_train_step()
            wall_start = time.monotonic() - float(self.wall_seconds.numpy())
            interval_loss, interval_steps = 0.0, 0
            for step in range(start + 1, tc.max_steps + 1):
                t0 = time.monotonic()
                loss = float(train_step(next(batches)))
                if step > start + 1:  # the first step pays for tracing and compilation
                    train_seconds += time.monotonic() - t0
                    train_steps += 1
                if not math.isfinite(loss):
                    last = self.manager.latest_checkpoint
                    raise TrainingDiverged(
                        f"loss became {loss} at step {step}: training stopped; the last good checkpoint "
                        f"({last or 'none'}) is kept; lower --learning_rate or set --grad_clip"
                    )
                interval_loss += loss
                interval_steps += 1
                if step % tc.log_every == 0 or step == tc.max_steps or step == start + 1:
                    now = time.monotonic()
                    seconds_per_step = train_seconds / train_steps if train_steps else now - t0
                    lr = float(self.optimizer.learning_rate)
                    record = dict(
                        kind="train",
                        step=step,
                        loss=interval_loss / interval_steps,
                        lr=lr,
                        tokens_per_sec=self.global_tokens / seconds_per_step,
                        elapsed=now - wall_start,
                    )
                    metrics.write(**record)
                    with writer.as_default(step=step):
                        tf.summary.scalar("train/loss", record["loss"])
                        tf.summary.scalar("train/learning_rate", lr)
                        tf.summary.scalar("train/tokens_per_sec", record["tokens_per_sec"])
                    line = f"step {step:>6}/{tc.max_steps} | loss {record['loss']:.4f} | lr {lr:.2e} | "
                    if train_steps:
                        eta = seconds_per_step * (tc.max_steps - step)
                        line += (
                            f"{record['tokens_per_sec']:,.0f} tok/s | "
                            f"{1000 * seconds_per_step:.1f} ms/step | "
                            f"eta {_duration(eta)}"
                        )
                    else:  # no speed to tell yet: the first step traces and compiles
                        line += f"first step {seconds_per_step:.1f} s (tracing and compiling)"
                    self.log(line)
                    interval_loss, interval_steps = 0.0, 0
                if self.is_chief and (step % tc.eval_every == 0 or step == tc.max_steps):
                    val = self._estimate(eval_step, self.val_ids)
                    train = self._estimate(eval_step, self.train_ids)
                    bpc = val / LN2 * len(self.val_ids) / len(self.val_text)
                    metrics.write(
                        kind="eval", step=step, val_loss=val, train_loss=train, val_bits_per_char=bpc
                    )
                    with writer.as_default(step=step):
                        tf.summary.scalar("eval/val_loss", val)
                        tf.summary.scalar("eval/train_loss", train)
                    self.log(
                        f"eval {step:>6} | val loss {val:.4f} nats/token | {bpc:.3f} bits/char | "
                        f"train loss {train:.4f}"
                    )
                if step % tc.checkpoint_every == 0 or step == tc.max_steps:
                    metrics.sync()
                    self.step.assign(step)
                    self.wall_seconds.assign(time.monotonic() - wall_start)
                    self.manager.save(checkpoint_number=step)
        else:
            self.log(f"already at step {start} of {tc.max_steps}: nothing to train; evaluating")
        steps_per_sec = train_steps / train_seconds if train_steps else None
        results = self._finish(eval_step, metrics, steps_per_sec)
        metrics.close()
        writer.close()
        return results

    def _finish(self, eval_step, metrics, steps_per_sec):
        if not self.is_chief:
            return {}
        full = self.evaluate_full(eval_step)
        results = {
            **full,
            "steps": int(self.step.numpy()),
            "tokens_per_sec": self.global_tokens * steps_per_sec if steps_per_sec else None,
            "targets_per_sec": self.global_targets * steps_per_sec if steps_per_sec else None,
            "wall_seconds": float(self.wall_seconds.numpy()),
            "model": self.config.model.model,
            "parameters": int(self.model.count_params()),
            "corpus": self.corpus.name,
        }
        metrics.write(kind="final", step=results["steps"], **full)
        md.write_json_atomic(self.model_dir / md.RESULTS, results)
        self._write_samples()
        self.log(
            f"final | val loss {full['val_loss']:.4f} nats/token | "
            f"{full['val_bits_per_char']:.3f} bits/char | "
            f"perplexity {full['val_perplexity']:.2f} | over all {full['val_tokens']:,} validation targets"
        )
        return results

    def _write_samples(self):
        """samples.txt: text sampled from a newline, as nanoGPT's sample.py does."""
        from lm_keras.generation import generate

        tc = self.config.train
        if not tc.sample_tokens:
            return
        with self.strategy.scope():
            text = generate(
                self.model,
                self.tokenizer,
                ["\n"],
                max_new_tokens=tc.sample_tokens,
                temperature=0.8,
                top_k=200,
                seed=tc.seed,
            )[0]
        md.write_text_atomic(self.model_dir / md.SAMPLES, text)
        self.log("sample | " + text[:200].replace("\n", "\n       | "))


def _duration(seconds):
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
