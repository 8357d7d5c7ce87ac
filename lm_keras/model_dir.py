"""The model directory: the contract between train, evaluate, generate, export and convert.

    MODEL_DIR/
      config.json     the resolved config, the corpus (name, sha256, split sizes), the dataset's
                      manifest hash, library versions; a converted model's source instead
      tokenizer/      the tokenizer's own files
      data/           the prepared dataset, when --corpus named text rather than a dataset
      checkpoints/    tf.train.CheckpointManager: see `checkpoint`
      metrics.jsonl   one JSON object per log or eval line
      results.json    final figures
      logs/           TensorBoard events
      samples.txt     text sampled at the end of training
      .lock           held by the one process training here (`hold`)

This module is the directory's one owner: config.json is written (`write_config`) and
read (`read_config`) here only; `prepare_run` chooses the dataset a run trains on with
every check that it still fits the run; `checkpoint` says what a checkpoint holds;
`load_trained` restores a model, and `write_converted` is what a converter writes.

Every file is written atomically (a temporary file renamed into place), so a run killed
at any moment leaves either the old file or the new one, never half of one. Importing
this module does not import TensorFlow: the commands check a directory before it loads.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil

from lm_keras.config import Config
from lm_keras.errors import UserError
from lm_keras.files import exclusive_lock, replace_dir_atomic, write_json_atomic
from lm_keras.versions import library_versions

CONFIG = "config.json"
TOKENIZER = "tokenizer"
CHECKPOINTS = "checkpoints"
DATA = "data"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
LOGS = "logs"
SAMPLES = "samples.txt"
WORKERS = "workers"


# ------------------------------------------------------------------ config.json


def read_config(model_dir):
    """(Config, the whole config.json as a dict) of a model directory."""
    path = pathlib.Path(model_dir) / CONFIG
    if not path.is_file():
        raise UserError(
            f"--model_dir={model_dir} holds no {CONFIG}: train a model there first "
            "(python -m lm_keras.train --model_dir=...)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Config.from_dict(raw), raw
    except (ValueError, TypeError, AttributeError) as e:  # bad JSON, bad values, wrong types
        raise UserError(
            f"{path} is not a config this lm_keras can read ({e}); the file is damaged or was "
            "edited: restore it, or train again in a new --model_dir"
        ) from None


def stored_config(model_dir):
    """`read_config` of a directory that has a config.json, else (None, None)."""
    if not (pathlib.Path(model_dir) / CONFIG).is_file():
        return None, None
    return read_config(model_dir)


def write_config(model_dir, config, *, preset=None, dataset=None, converted_from=None, lora_base=None):
    """Writes config.json: the one place its schema is written.

    Args:
        config: the resolved `Config` (its `model.vocab_size` the tokenizer's).
        preset: the preset a training run started from.
        dataset: a training run's `PreparedDataset`: the corpus it was made of (name, spec,
            sha256, characters and the two splits' sizes in tokens) and the manifest's hash,
            which a resumed run checks.
        converted_from: a converted model's source ({format, source, config}).
        lora_base: a LoRA run's base checkpoint ({model_dir, checkpoint, sha256}; `lora_base`).
    """
    record = {**config.to_dict(), "versions": library_versions()}
    if lora_base is not None:
        record[LORA_BASE] = lora_base
    if converted_from is not None:
        record["converted_from"] = converted_from
    else:
        record["preset"] = preset
    if dataset is not None:
        corpus = dataset.manifest["corpus"]
        record["corpus"] = {
            "name": corpus["name"],
            "origin": corpus["spec"],
            "sha256": corpus["sha256"],
            "characters": corpus["characters"],
            "train_split_tokens": dataset.train.tokens,
            "val_split_tokens": dataset.val.tokens,
        }
        record["dataset"] = {"path": str(dataset.path), "manifest_sha256": dataset.manifest_sha256}
    write_json_atomic(pathlib.Path(model_dir) / CONFIG, record)


# --------------------------------------------------------------- one writer at a time


def worker():
    """(is_chief, task index) of this process, from TF_CONFIG as tf.distribute reads it.

    The chief is the `chief` task, else worker 0 of a cluster without one; a process
    without TF_CONFIG is chief 0. TensorFlow-free, so a run knows its folder before TF loads.
    """
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind in (None, "chief"):
        return True, 0
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return kind == "worker" and index == 0 and "chief" not in cluster, index


def work_dir(model_dir):
    """Where this process writes: the model directory, or workers/<index>/ for a non-chief worker
    of a multi-worker run (its own checkpoints and data)."""
    chief, index = worker()
    return pathlib.Path(model_dir) if chief else pathlib.Path(model_dir) / WORKERS / str(index)


@contextlib.contextmanager
def hold(model_dir):
    """Holds the OS lock of this process's folder of a run (`work_dir`) for the block.

    A second run on the same directory is refused in one line naming the first's pid, and a
    kill releases the lock. A model directory the block created is removed again if the block
    fails before config.json is written: a failed start leaves nothing behind.
    """
    model_dir = pathlib.Path(model_dir)
    created = not model_dir.exists()
    try:
        with exclusive_lock(work_dir(model_dir), "training run", "--model_dir"):
            yield
    except BaseException:
        if created and not (model_dir / CONFIG).exists():
            shutil.rmtree(model_dir, ignore_errors=True)
        raise


# --------------------------------------------------------------- the run's dataset


def prepare_run(model_dir, config, *, preset=None, log=print):
    """Makes `model_dir` ready to train `config`: its dataset, tokenizer and config.json.

    The dataset is `config.data.corpus` when that is a prepared dataset, else the corpus
    prepared once into the run's data/ (each non-chief worker of a multi-worker run into
    its own). Before a run trains on it, every check that it still fits the run: a rerun's
    corpus did not change since (its text's sha256), a given dataset is the one the run
    started on (its manifest's hash), and its tokenizer is the run's and --init_from's.

    Returns:
        (config with `model.vocab_size` the tokenizer's, the `PreparedDataset`).

    Raises:
        UserError: a dataset that does not fit, or a corpus that cannot be prepared.
    """
    from lm_keras.data import check_windows, shards

    model_dir = pathlib.Path(model_dir)
    chief, _ = worker()
    _, stored = stored_config(model_dir)
    dataset = _dataset(model_dir, config, stored, log)
    theirs = shards.tokenizer_sha256(dataset.tokenizer_dir)
    own = model_dir / TOKENIZER
    if own.is_dir() and shards.tokenizer_sha256(own) != theirs:
        raise UserError(
            f"the dataset {dataset.path} was prepared with another tokenizer than the run in "
            f"{model_dir}: use the run's own data, or start a new --model_dir"
        )
    init_from = config.train.init_from
    if init_from and not _tokenizer_of(pathlib.Path(init_from) / TOKENIZER, theirs):
        raise UserError(
            f"the dataset {dataset.path} was prepared with another tokenizer than --init_from="
            f"{init_from}'s: prepare it with --tokenizer_from={init_from}"
        )
    tokenizer = dataset.tokenizer()
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size)
    )
    name = dataset.manifest["corpus"]["name"]
    if dataset.manifest.get("examples"):
        from lm_keras.data.examples import check_example_lengths

        check_example_lengths(dataset, config.model.seq_len)
    else:
        check_windows(dataset.train, config.model.seq_len, "training", name)
        check_windows(dataset.val, config.model.seq_len, "validation", name)
    base = None
    if config.train.lora_rank:
        base = stored[LORA_BASE] if stored is not None and LORA_BASE in stored else lora_base(init_from)
    if chief:
        if not own.is_dir():
            replace_dir_atomic(tokenizer.save, own)
        write_config(model_dir, config, preset=preset, dataset=dataset, lora_base=base)
    return config, dataset


def _tokenizer_of(directory, sha256):
    """Whether the tokenizer files hashing to `sha256` are `directory`'s tokenizer, or it with the
    end-of-text id appended (a dataset of examples made from a run trained without one)."""
    import tempfile

    from lm_keras import tokenizers
    from lm_keras.data import shards

    if shards.tokenizer_sha256(directory) == sha256:
        return True
    grown = tokenizers.load(directory).with_end_of_text()
    with tempfile.TemporaryDirectory() as tmp:
        grown.save(tmp)
        return shards.tokenizer_sha256(tmp) == sha256


def _dataset(model_dir, config, stored, log):
    """The `PreparedDataset` a run trains on, checked against `stored`, the config.json dict of the
    run it resumes (None for a new run)."""
    from lm_keras.data import shards
    from lm_keras.data.prepare import corpus_changes, prepare

    cfg = config.data
    given = shards.is_prepared(cfg.corpus)
    if given:
        dataset = shards.PreparedDataset(cfg.corpus)
    else:
        data_dir = work_dir(model_dir) / DATA
        if shards.is_prepared(data_dir):
            dataset = shards.PreparedDataset(data_dir)
            log(f"checking that corpus {cfg.corpus!r} did not change since it was prepared")
            changes = corpus_changes(dataset, cfg.tfds_data_dir)
            if changes:
                raise UserError(
                    f"corpus {cfg.corpus!r} changed since this run started in {model_dir} "
                    f"({changes}): restore the text or start a new --model_dir"
                )
        else:
            # A tokenizer/ already in the model directory is the run's (put there by hand, or by
            # a run of an older lm_keras, which has no data/): encode with it.
            own = model_dir / TOKENIZER
            dataset = prepare(
                cfg.corpus,
                data_dir,
                tokenizer=cfg.tokenizer,
                vocab_size=cfg.vocab_size,
                val_fraction=cfg.val_fraction,
                tokenizer_from=str(own) if own.is_dir() else config.train.init_from,
                tfds_data_dir=cfg.tfds_data_dir,
                validation_data=cfg.validation_data,
                log=log,
            )
    dataset.check_ends()
    if stored is not None:
        # A dataset of the run's own (data/) was checked against its corpus above; one given
        # as --corpus must be the very dataset the run started on.
        then = stored.get("dataset", {}).get("manifest_sha256")
        moved = given and then and then != dataset.manifest_sha256
        if moved or stored["corpus"]["sha256"] != dataset.manifest["corpus"]["sha256"]:
            raise UserError(
                f"the dataset {dataset.path} changed since this run started in {model_dir} "
                f"(manifest sha256 {(then or '?')[:12]}... then, {dataset.manifest_sha256[:12]}... now): "
                "restore it or start a new --model_dir"
            )
    return dataset


def run_dataset(model_dir):
    """The prepared dataset a trained run's config.json names: its data/, or the dataset it was
    given; None when neither is there (a converted model, or a dataset since moved)."""
    from lm_keras.data import shards

    own = pathlib.Path(model_dir) / DATA
    if shards.is_prepared(own):
        return shards.PreparedDataset(own)
    _, raw = read_config(model_dir)
    path = raw.get("dataset", {}).get("path")
    return shards.PreparedDataset(path) if path and shards.is_prepared(path) else None


# ------------------------------------------------------------------- checkpoints


def checkpoint(model, step, optimizer=None, wall_seconds=None, rng=None, lora_base=None):
    """What a checkpoint holds: `tf.train.Checkpoint` of the model's weights and the step, and
    for a training run also its optimizer, wall time and dropout's RNG state.

    Training saves all five, a converter the first two; `load_trained` reads the first two of
    either. Keras seed generators are not reachable through the layers by tf.train.Checkpoint,
    so a run passes their state variables as `rng`. A LoRA run's model (`enable_lora`) is saved
    as what it trains alone ("adapters", by their paths in the model: the pairs, and the embedding
    when the base's vocabulary grew), beside `lora_base`, a string variable holding the sha256 of
    the base checkpoint they apply to (`apply_lora`).
    """
    import tensorflow as tf

    objects = dict(model=model, step=step, optimizer=optimizer, wall_seconds=wall_seconds, rng=rng)
    if getattr(model, "lora_rank", 0):
        objects.update(model=None, lora_base=lora_base)
        objects["adapters"] = {
            v.path.split("/", 1)[1].replace("/", "."): v.value for v in model.trainable_variables
        }
    return tf.train.Checkpoint(**{k: v for k, v in objects.items() if v is not None})


def checkpoint_manager(ckpt, model_dir, max_to_keep):
    import tensorflow as tf

    return tf.train.CheckpointManager(ckpt, str(pathlib.Path(model_dir) / CHECKPOINTS), max_to_keep)


def latest_checkpoint(model_dir):
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(pathlib.Path(model_dir) / CHECKPOINTS))


@dataclasses.dataclass
class TrainedModel:
    """A model restored from a model directory's latest checkpoint."""

    config: Config
    tokenizer: object
    model: object
    step: int
    model_dir: str


def load_trained(model_dir, merge_lora=False):
    """Builds the model of `model_dir` and restores its latest weights (not the optimizer).

    A LoRA run's model is its base (the checkpoint config.json names, checked by its sha256)
    with the run's adapters; `merge_lora=True` folds them in (`TransformerLM.merge_lora`), for
    a plain model that computes the same (what export writes).
    """
    import tensorflow as tf

    from lm_keras import tokenizers
    from lm_keras.models import build_model

    config, _ = read_config(model_dir)
    latest = latest_checkpoint(model_dir)
    if latest is None:
        raise UserError(
            f"--model_dir={model_dir} holds no checkpoint yet: let training reach "
            "its first checkpoint (--checkpoint_every) first"
        )
    tokenizer = tokenizers.load(pathlib.Path(model_dir) / TOKENIZER)
    model = build_model(config.model)
    step = tf.Variable(0, dtype=tf.int64)
    base = apply_lora(model, model_dir, config.train) if config.train.lora_rank else None
    checkpoint(model, step, lora_base=base).restore(latest).expect_partial()
    if base is not None:
        check_lora_checkpoint(base, model_dir, latest)
        if merge_lora:
            model = model.merge_lora()
    return TrainedModel(config, tokenizer, model, int(step.numpy()), str(model_dir))


def restore_weights(model, model_dir):
    """Loads the latest weights of `model_dir` into `model` (a fine-tuning run's start); returns the
    checkpoint's path."""
    latest = latest_checkpoint(model_dir)
    if latest is None:
        raise UserError(f"--init_from={model_dir} holds no checkpoint: train that run first")
    if read_config(model_dir)[0].train.lora_rank:  # a LoRA run: its base with the adapters merged
        merged = load_trained(model_dir, merge_lora=True).model
        for mine, theirs in zip(model.weights, merged.weights, strict=True):
            mine.assign(theirs)
        return latest
    _restore_base(model, read_config(model_dir)[0].model, latest)
    return latest


def _restore_base(model, base_config, path):
    """Restores the checkpoint `path` of a model of `base_config` into `model`: the same model, or
    one token larger, when the run's tokenizer is the base's with the end-of-text id appended
    (fine-tuning on examples): the embedding (and an untied head) then grows by one row."""
    if base_config.vocab_size == model.vocab_size - 1:
        _restore_grown(model, base_config, path)
    else:
        checkpoint(model, None).restore(path).expect_partial().assert_existing_objects_matched()


def _restore_grown(model, base_config, path):
    """Restores a checkpoint of a model one token smaller into `model`: every weight as it was,
    and the new token's embedding row (and head column) the mean of the others, as Hugging Face's
    `resize_token_embeddings` does, so the new token starts as a typical one."""
    import numpy as np

    from lm_keras.models import build_model

    base = build_model(base_config)
    checkpoint(base, None).restore(path).expect_partial().assert_existing_objects_matched()
    for mine, theirs in zip(model.weights, base.weights, strict=True):
        value = np.asarray(theirs.numpy())
        grown = [axis for axis, (a, b) in enumerate(zip(mine.shape, value.shape)) if a == b + 1]
        if grown:
            axis = grown[0]  # (V, d) embeddings, or (d, V) for an untied head
            value = np.concatenate([value, value.mean(axis=axis, keepdims=True)], axis=axis)
        mine.assign(value)


# ------------------------------------------------------------------------- LoRA

LORA_BASE = "lora_base"  # config.json's record of the checkpoint a LoRA run adapts


def checkpoint_sha256(prefix):
    """The sha256 of a checkpoint's files (`prefix.index` and its data shards, names and bytes)."""
    prefix = pathlib.Path(prefix)
    files = sorted(prefix.parent.glob(prefix.name + ".index")) + sorted(
        prefix.parent.glob(prefix.name + ".data-*")
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def lora_base(init_from):
    """The record a new LoRA run keeps of its base: --init_from's latest checkpoint and its sha256."""
    latest = latest_checkpoint(init_from)
    if latest is None:
        raise UserError(f"--init_from={init_from} holds no checkpoint: train that run first")
    return {
        "model_dir": str(pathlib.Path(init_from).resolve()),
        "checkpoint": pathlib.Path(latest).name,
        "sha256": checkpoint_sha256(latest),
    }


def apply_lora(model, model_dir, train_config):
    """Restores the base a LoRA run adapts into `model` and enables the run's adapters on it.

    The base is the checkpoint that `model_dir`'s config.json names; one whose files no longer
    hash to the recorded sha256 (another base) is refused in one line. Returns a string
    `tf.Variable` holding that sha256, which `checkpoint` saves beside the adapters.
    """
    import tensorflow as tf

    base = read_config(model_dir)[1][LORA_BASE]
    prefix = pathlib.Path(base["model_dir"]) / CHECKPOINTS / base["checkpoint"]
    if not pathlib.Path(f"{prefix}.index").is_file():
        raise UserError(
            f"the LoRA run in {model_dir} adapts {prefix}, which is gone: restore that base "
            "checkpoint, or start a new --model_dir"
        )
    now = checkpoint_sha256(prefix)
    if now != base["sha256"]:
        raise UserError(
            f"the LoRA run in {model_dir} adapts {prefix} (sha256 {base['sha256'][:12]}...), which now "
            f"holds other weights (sha256 {now[:12]}...): its adapters fit their base only; restore "
            "it, or start a new --model_dir"
        )
    base_config = read_config(base["model_dir"])[0].model
    _restore_base(model, base_config, str(prefix))
    tc = train_config
    # A grown vocabulary's new row (the end-of-text id) learns only if the embedding trains.
    grown = base_config.vocab_size < model.vocab_size
    model.enable_lora(tc.lora_rank, tc.lora_alpha, tc.lora_targets, train_embeddings=grown)
    return tf.Variable(base["sha256"], dtype=tf.string, trainable=False, name="lora_base")


def check_lora_checkpoint(lora_base, model_dir, path):
    """Refuses a LoRA checkpoint restored into `lora_base` (`apply_lora`'s variable) whose adapters
    were trained on another base than config.json names."""
    then = lora_base.numpy().decode()
    base = read_config(model_dir)[1][LORA_BASE]
    if then != base["sha256"]:
        raise UserError(
            f"{path} holds adapters of another base (sha256 {then[:12]}...) than {model_dir}'s config.json "
            f"names ({base['sha256'][:12]}...): the run's files were mixed; start a new --model_dir"
        )


# ------------------------------------------------------------------- converters


def check_new(folder, flag):
    """Refuses an existing file or non-empty folder: a converter or exporter writes a new one."""
    folder = pathlib.Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{flag}={folder} already exists and is not empty: pass a new folder")


def write_converted(model_dir, config, tokenizer, model, converted_from):
    """What a converter writes: a new model directory of `model` (config.json with its source,
    tokenizer/, one checkpoint at step 0), complete or not at all.

    Returns:
        The `TrainedModel` of the new directory.
    """
    import tensorflow as tf

    check_new(model_dir, "--model_dir")

    def fill(tmp):
        tokenizer.save(tmp / TOKENIZER)
        checkpoint_manager(checkpoint(model, tf.Variable(0, dtype=tf.int64)), tmp, 1).save()
        write_config(tmp, config, converted_from=converted_from)

    replace_dir_atomic(fill, model_dir)
    return TrainedModel(config, tokenizer, model, 0, str(model_dir))
