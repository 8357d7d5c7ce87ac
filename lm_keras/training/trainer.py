"""The trainer: one loop for every strategy, compiled steps, evaluation, checkpoints.

Keras 3's `model.fit` is not reliable under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so the trainer owns its loop: `strategy.run` on a
`tf.function` step, used the same way by the default, mirrored, multi-worker and
TPU strategies.
"""

import math
import pathlib
import time

import keras
import tensorflow as tf

from lm_keras import model_dir as md
from lm_keras.data import train_dataset
from lm_keras.data.pipeline import example_eval_dataset, example_train_dataset, shard_errors
from lm_keras.errors import UserError
from lm_keras.families import family, resolve_jit
from lm_keras.files import write_json_atomic, write_text_atomic
from lm_keras.models import build_model
from lm_keras.progress import duration
from lm_keras.training.distribution import make_strategy
from lm_keras.training.evaluation import (
    LN2,
    estimate,
    evaluate,
    full_evaluation,
    make_eval_step,
    per_example_loss,
)
from lm_keras.training.metrics_log import MetricsLog
from lm_keras.training.optimizers import make_optimizer


class TrainingDiverged(UserError):
    """The loss stopped being finite; the last good checkpoint is kept."""


def train(model_dir, config, preset=None, log=None):
    """Trains `config` in `model_dir` as the train command does; returns the results dict.

    One process at a time, and a failed start leaves nothing (`model_dir.hold`); the run's
    dataset, tokenizer and config.json made ready (`model_dir.prepare_run`); then `Trainer.run`.

    Example:
        >>> from lm_keras.config import preset
        >>> results = train("runs/shakespeare", preset("shakespeare_char_cpu"), "shakespeare_char_cpu")
    """
    log = log or (lambda line: print(line, flush=True))
    with md.hold(model_dir):
        config, dataset = md.prepare_run(model_dir, config, preset=preset, log=log)
        return Trainer(config, dataset, model_dir, log=log).run()


class Trainer:
    """Trains a resolved `Config` on a ready dataset into a model directory.

    Rerunning with the same model directory resumes from the latest checkpoint:
    weights, optimizer, step, dropout RNG state and (through the step) the data
    position, so an interrupted run finishes exactly where an uninterrupted one would.
    The directory's config.json, tokenizer and dataset are `lm_keras.model_dir`'s
    (`prepare_run`), and `train` is the whole run as the command does it.

    Args:
        config: the resolved `lm_keras.config.Config`, its `model.vocab_size` the tokenizer's.
        dataset: the `PreparedDataset` to train on.
        model_dir: the model directory (see `lm_keras.model_dir`).
        log: where progress lines go (default: print to stdout).

    Example:
        >>> config, dataset = model_dir.prepare_run("runs/shakespeare", preset("shakespeare_char_cpu"))
        >>> results = Trainer(config, dataset, "runs/shakespeare").run()
    """

    def __init__(self, config, dataset, model_dir, log=None):
        self.config = config
        self.dataset = dataset
        self.train_split, self.val_split = dataset.train, dataset.val
        # Task examples (a .jsonl corpus): example-aligned windows, each target weighted by its
        # loss mask; the end-of-text id closes each example.
        self.examples = dataset.manifest.get("examples")
        self.model_dir = pathlib.Path(model_dir)
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
        self.is_chief, _ = md.worker()
        self.work_dir = md.work_dir(self.model_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer = self.dataset.tokenizer()

    def _build(self):
        cfg, tc = self.config, self.config.train
        with self.strategy.scope():
            self.model = build_model(cfg.model)
            # LoRA: the base restored and frozen, adapters on it; only they train and have optimizer state.
            self.lora_base = md.apply_lora(self.model, self.model_dir, tc) if tc.lora_rank else None
            self.optimizer = make_optimizer(
                tc, self.model.trainable_variables, self.strategy.num_replicas_in_sync
            )
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.wall_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_seconds")
        # Dropout's RNG state lives in Keras seed generators, which tf.train.Checkpoint
        # does not see through the layers: save their variables explicitly.
        rng = [v.value for v in self.model.non_trainable_variables if "seed_generator" in v.path]
        self.checkpoint = md.checkpoint(
            self.model, self.step, self.optimizer, self.wall_seconds, rng, lora_base=self.lora_base
        )
        self.manager = md.checkpoint_manager(self.checkpoint, self.work_dir, tc.keep_checkpoints)
        self.jit = resolve_jit(tc.jit_compile, cfg.model.model)
        self.view = family(cfg.model.model).view
        # Packed examples attend only within themselves (the Transformer's segments, which the
        # pipeline gives from the example index); an LSTM carries its state across the
        # end-of-text id, which it learns to treat as a reset.
        self.segments = bool(self.examples and tc.packing == "packed" and family(cfg.model.model).segments)
        # Every replica's share of a micro-batch is whole (`train_batches` cuts the step's windows).
        replicas = self.strategy.num_replicas_in_sync
        if tc.batch_size % replicas:
            raise UserError(
                f"--batch_size={tc.batch_size} must be divisible by the {replicas} replicas of the "
                "distributed run (each trains on its share of every micro-batch)"
            )
        # Input tokens of one optimizer step (all its micro-batches), and the targets they train
        # on: every position for the sequence models, one per window for the documented LSTM.
        self.step_windows = tc.batch_size * tc.grad_accum_steps
        self.global_tokens = self.step_windows * cfg.model.seq_len
        self.global_targets = self.global_tokens if self.view == "next_token" else self.step_windows

    def _restore(self):
        """Returns the step to start after: the latest checkpoint's, or 0."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            if self.lora_base is not None:
                md.check_lora_checkpoint(self.lora_base, self.model_dir, latest)
            self.log(f"resuming from {latest} (step {int(self.step.numpy())})")
            return int(self.step.numpy())
        if self.lora_base is not None:
            adapters = sum(math.prod(v.shape) for v in self.model.trainable_variables)
            self.log(f"LoRA fine-tuning of {self.config.train.init_from}: {adapters:,} adapter parameters")
        elif self.config.train.init_from:
            source = md.restore_weights(self.model, self.config.train.init_from)
            self.log(f"fine-tuning from {source}: weights only, a fresh optimizer")
        return 0

    # ----------------------------------------------------------- compiled steps

    def make_train_step(self):
        """The compiled step: a distributed batch in, the global mean loss out (it updates the model).

        With `grad_accum_steps` N > 1 each replica's windows are N micro-batches, run one after
        another in a `tf.while_loop` (one micro-batch's activations alive at a time) and their
        gradients summed; every loss is divided by the targets of the whole step (for examples,
        the loss-mask weight of all its windows, on every replica), so the sum is
        the gradient of the step's mean loss, as one batch of all its windows gives. Clipping,
        the loss scale's check and the optimizer then act once, on the sum.
        """
        tc = self.config.train
        strategy, model, optimizer = self.strategy, self.model, self.optimizer
        replicas = strategy.num_replicas_in_sync
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        variables = model.trainable_variables
        view, accum = self.view, tc.grad_accum_steps

        def micro_loss_and_grads(count, x, y, w, *segments):
            # segments: (), or the packed windows' segment ids (b, T)
            extra = {"segment_ids": segments[0]} if segments else {}
            with tf.GradientTape() as tape:
                outputs = model(x, training=True, **extra)
                loss = tf.reduce_sum(per_example_loss(view, y, outputs) * w) / count
                scaled = optimizer.scale_loss(loss) if loss_scaled else loss
            return loss, [tf.convert_to_tensor(g) for g in tape.gradient(scaled, variables)]

        def accumulated_loss_and_grads(count, *batch):
            # Each of x, y, w (and segments): (b N, ...) -> (N, b, ...), y one-hot (N, b, V) too
            parts = [tf.reshape(t, [accum, -1, *t.shape[1:]]) for t in batch]

            def body(i, loss, grads):
                micro_loss, micro_grads = micro_loss_and_grads(count, *(t[i] for t in parts))
                return i + 1, loss + micro_loss, [a + g for a, g in zip(grads, micro_grads)]

            zeros = [tf.zeros(v.shape, v.dtype) for v in variables]
            # parallel_iterations=1: the micro-batches run in turn, never several at once in memory.
            _, loss, grads = tf.while_loop(
                lambda i, loss, grads: i < accum,
                body,
                (tf.constant(0), tf.constant(0.0), zeros),
                parallel_iterations=1,
            )
            return loss, grads

        loss_and_grads = micro_loss_and_grads if accum == 1 else accumulated_loss_and_grads

        # One replica: XLA compiles the whole step, optimizer update included.
        # Several: XLA compiles the gradient; the all-reduce stays outside it.
        whole = self.jit and replicas == 1
        if self.jit and not whole:
            loss_and_grads = tf.function(loss_and_grads, jit_compile=True)

        def replica_step(x, y, w=None, *segments):
            if w is None:  # a corpus: every target counts, a constant number of them per step
                w = tf.ones(tf.shape(y) if view == "next_token" else tf.shape(y)[:1], tf.float32)
                count = tf.constant(float(self.global_targets))
            else:  # examples: the step's loss-mask tokens, over every micro-batch and replica
                count = tf.reduce_sum(w)
                if replicas > 1:
                    count = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, count)
                count = tf.maximum(count, 1.0)
            loss, grads = loss_and_grads(count, x, y, w, *segments)
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

    def _estimate(self, eval_step, tokens):
        """Mean loss over `eval_batches` fixed random windows of a split (of examples: over the
        loss-mask targets of its first `eval_batches` batches of examples)."""
        tc, mc = self.config.train, self.config.model
        if self.examples:
            return self._example_loss(eval_step, tokens, batches=tc.eval_batches)[0]
        return estimate(
            eval_step,
            tokens,
            view=self.view,
            seq_len=mc.seq_len,
            batch_size=tc.batch_size,
            vocab_size=mc.vocab_size,
            batches=tc.eval_batches,
        )

    def _example_loss(self, eval_step, split, batches=None):
        """(mean loss, targets) over the loss-mask targets of a split's examples, each once."""
        tc, mc = self.config.train, self.config.model
        ds = example_eval_dataset(
            split,
            seq_len=mc.seq_len,
            batch_size=tc.batch_size,
            loss_on=tc.loss_on,
            view=self.view,
            vocab_size=mc.vocab_size,
        )
        total, count = evaluate(eval_step, ds if batches is None else ds.take(batches))
        return total / max(count, 1.0), int(count)

    def evaluate_full(self, eval_step):
        """The final evaluation: the first `eval_tokens` validation targets (0: all); for examples,
        every validation example's loss-mask targets (`completion_loss` with loss_on=completion)."""
        mc = self.config.model
        if self.examples:
            loss, count = self._example_loss(eval_step, self.val_split)
            return {
                "val_loss": loss,
                "val_perplexity": math.exp(loss),
                "val_bits_per_char": None,
                "val_tokens": count,
                "val_split_targets": count,
                "completion_loss": loss if self.config.train.loss_on == "completion" else None,
                "examples": self.examples["splits"]["val"]["examples"],
            }
        return full_evaluation(
            eval_step,
            self.val_split,
            self.tokenizer,
            view=self.view,
            seq_len=mc.seq_len,
            batch_size=self.config.train.batch_size,
            vocab_size=mc.vocab_size,
            max_targets=self.config.train.eval_tokens,
        )

    # --------------------------------------------------------------------- run

    def prepare(self):
        """Everything before the loop: devices, tokenizer, model, optimizer, restore.

        Returns the step to continue after. Afterwards `model`, `optimizer`, `strategy`,
        `tokenizer`, `dataset`, `train_split`, `val_split` and `make_train_step()` are
        ready, which is what notebooks and benchmarks use to look inside a run.
        """
        self._setup()
        self._build()
        return self._restore()

    def train_batches(self, start):
        """An iterator of distributed global batches for the steps after `start`.

        A step's windows are one batch of `batch_size * grad_accum_steps` of the pipeline (which
        the step cuts into micro-batches), so the data position is the step's whatever N is.
        """
        tc, mc = self.config.train, self.config.model
        replicas = self.strategy.num_replicas_in_sync

        def dataset_fn(ctx):
            common = dict(
                seq_len=mc.seq_len,
                batch_size=self.step_windows,
                seed=tc.seed,
                view=self.view,
                vocab_size=mc.vocab_size,
                start_step=start,
                num_steps=tc.max_steps - start,
                input_context=ctx,
            )
            if self.examples:
                windows = example_train_dataset(
                    self.train_split, packing=tc.packing, loss_on=tc.loss_on, segments=self.segments, **common
                )
            else:
                windows = train_dataset(self.train_split, **common)
            # A pipeline that feeds several replicas (one worker's GPUs, a TPU host's cores) hands
            # them consecutive elements in turn: cut its slice of each step into one per replica.
            if replicas > ctx.num_input_pipelines:
                windows = windows.rebatch(self.step_windows // replicas, drop_remainder=True)
            return windows

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def run(self):
        """Trains to `max_steps` (resuming if possible); returns the results dict."""
        start = self.prepare()
        cfg, tc, mc = self.config, self.config.train, self.config.model
        self.metrics = MetricsLog(self.model_dir / md.METRICS, start, enabled=self.is_chief)
        self.writer = (
            tf.summary.create_file_writer(str(self.model_dir / md.LOGS))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )
        eval_step = make_eval_step(self.model, self.view, self.jit)
        accumulation = f" | {tc.grad_accum_steps} micro-batches a step" if tc.grad_accum_steps > 1 else ""
        self.log(
            f"{mc.model}: {self.model.count_params():,} parameters | "
            f"vocab {mc.vocab_size} ({cfg.data.tokenizer}) | "
            f"corpus {self.dataset.manifest['corpus']['name']}: "
            f"{self.train_split.tokens:,} train / {self.val_split.tokens:,} val tokens | "
            f"{self.strategy.num_replicas_in_sync} replica(s) | jit={self.jit} | {tc.mixed_precision}"
            f"{accumulation}"
        )
        clock = _Clock(time.monotonic() - float(self.wall_seconds.numpy()))
        if start < tc.max_steps:
            batches = self.train_batches(start)
            train_step = self.make_train_step()
            for step in range(start + 1, tc.max_steps + 1):
                with shard_errors():
                    loss = clock.time_step(lambda: float(train_step(next(batches))), first=step == start + 1)
                if not math.isfinite(loss):
                    last = self.manager.latest_checkpoint
                    raise TrainingDiverged(
                        f"loss became {loss} at step {step}: training stopped; the last good checkpoint "
                        f"({last or 'none'}) is kept; lower --learning_rate or set --grad_clip"
                    )
                clock.losses.append(loss)
                if step % tc.log_every == 0 or step == tc.max_steps or step == start + 1:
                    self._progress_line(step, clock)
                if self.is_chief and (step % tc.eval_every == 0 or step == tc.max_steps):
                    with shard_errors():
                        self._periodic_evaluation(step, eval_step)
                if step % tc.checkpoint_every == 0 or step == tc.max_steps:
                    self._checkpoint(step, clock)
        else:
            self.log(f"already at step {start} of {tc.max_steps}: nothing to train; evaluating")
        with shard_errors():
            results = self._finish(eval_step, clock.steps_per_sec())
        self.metrics.close()
        self.writer.close()
        return results

    def _progress_line(self, step, clock):
        """A progress line (metrics.jsonl, TensorBoard, the log) for the steps since the last one."""
        tc = self.config.train
        seconds_per_step = clock.seconds_per_step()
        lr = float(self.optimizer.learning_rate)
        record = dict(
            kind="train",
            step=step,
            loss=sum(clock.losses) / len(clock.losses),
            lr=lr,
            tokens_per_sec=self.global_tokens / seconds_per_step,
            elapsed=time.monotonic() - clock.wall_start,
        )
        self.metrics.write(**record)
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", record["loss"])
            tf.summary.scalar("train/learning_rate", lr)
            tf.summary.scalar("train/tokens_per_sec", record["tokens_per_sec"])
        line = f"step {step:>6}/{tc.max_steps} | loss {record['loss']:.4f} | lr {lr:.2e} | "
        if clock.steps:
            line += (
                f"{record['tokens_per_sec']:,.0f} tok/s | {1000 * seconds_per_step:.1f} ms/step | "
                f"eta {duration(seconds_per_step * (tc.max_steps - step))}"
            )
        else:  # no speed to tell yet: the first step traces and compiles
            line += f"first step {seconds_per_step:.1f} s (tracing and compiling)"
        self.log(line)
        clock.losses = []

    def _periodic_evaluation(self, step, eval_step):
        """The validation and training estimates on their fixed windows."""
        val = self._estimate(eval_step, self.val_split)
        train = self._estimate(eval_step, self.train_split)
        # Bits per character are a corpus's measure; an example's loss is over its completion.
        bpc = None if self.examples else val / LN2 * self.val_split.tokens / self.val_split.characters
        self.metrics.write(kind="eval", step=step, val_loss=val, train_loss=train, val_bits_per_char=bpc)
        with self.writer.as_default(step=step):
            tf.summary.scalar("eval/val_loss", val)
            tf.summary.scalar("eval/train_loss", train)
        bits = "" if bpc is None else f" | {bpc:.3f} bits/char"
        self.log(f"eval {step:>6} | val loss {val:.4f} nats/token{bits} | train loss {train:.4f}")

    def _checkpoint(self, step, clock):
        """Saves weights, optimizer, step, RNG state and wall time (after the metrics they cover)."""
        self.metrics.sync()
        self.step.assign(step)
        self.wall_seconds.assign(time.monotonic() - clock.wall_start)
        self.manager.save(checkpoint_number=step)

    def _finish(self, eval_step, steps_per_sec):
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
            "corpus": self.dataset.manifest["corpus"]["name"],
        }
        self.metrics.write(kind="final", step=results["steps"], **full)
        write_json_atomic(self.model_dir / md.RESULTS, results)
        self._write_samples()
        scored = f"over all {full['val_tokens']:,} validation targets"
        if self.examples:
            scored = (
                f"over the {full['val_tokens']:,} {self.config.train.loss_on} targets of "
                f"{full['examples']:,} validation examples"
            )
        elif full["val_tokens"] < full["val_split_targets"]:
            scored = (
                f"over the first {full['val_tokens']:,} of {full['val_split_targets']:,} validation "
                "targets (--eval_tokens)"
            )
        bits = "" if full["val_bits_per_char"] is None else f"{full['val_bits_per_char']:.3f} bits/char | "
        self.log(
            f"final | val loss {full['val_loss']:.4f} nats/token | {bits}"
            f"perplexity {full['val_perplexity']:.2f} | {scored}"
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
                jit_compile=None if tc.jit_compile == "auto" else self.jit,  # as --jit_compile says
            )[0]
        write_text_atomic(self.model_dir / md.SAMPLES, text)
        self.log("sample | " + text[:200].replace("\n", "\n       | "))


class _Clock:
    """The loop's timing: wall time since the run began, and the speed of the steps after the first."""

    def __init__(self, wall_start):
        self.wall_start = wall_start
        self.seconds, self.steps, self.last, self.losses = 0.0, 0, 0.0, []

    def time_step(self, run, first):
        t0 = time.monotonic()
        value = run()
        self.last = time.monotonic() - t0
        if not first:  # the first step pays for tracing and compilation
            self.seconds += self.last
            self.steps += 1
        return value

    def seconds_per_step(self):
        return self.seconds / self.steps if self.steps else self.last

    def steps_per_sec(self):
        return self.steps / self.seconds if self.steps else None
