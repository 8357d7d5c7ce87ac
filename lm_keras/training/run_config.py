"""Resolves the config of a training run from a preset, flags and the model directory.

TensorFlow-free, so the train command can refuse bad flags before TensorFlow loads.
"""

import dataclasses
import pathlib

from lm_keras import config as config_lib
from lm_keras import model_dir as md
from lm_keras.data import corpus, shards
from lm_keras.errors import UserError

# Fields a resumed run may not change: they define what is being trained.
_FIXED_SECTIONS = ("model", "data")
# Fields a fine-tuning run takes from the run it starts from (dropout excepted).
_INHERITED_DATA_FIELDS = ("tokenizer", "vocab_size")
# Training fields a LoRA run may not change when it resumes: its adapters and their base.
_LORA_FIELDS = ("init_from", "lora_rank", "lora_alpha", "lora_targets")
# Fields a prepared dataset fixes: its tokenizer and its split.
_DATASET_FIELDS = ("tokenizer", "vocab_size", "val_fraction")


def resolve_config(model_dir, preset_name, overrides, preset_given=False):
    """The `Config` to train with.

    Args:
        model_dir: the run's directory; if it holds a config.json the run resumes with
            that config, and flags may change only training settings.
        preset_name: the preset a new run starts from.
        overrides: {flat field name: value} of the flags given on the command line.
        preset_given: whether --preset was given explicitly.

    Raises:
        UserError: a resumed run asked to change its model or data, or a fine-tuning run
            asked for an architecture or tokenizer other than its source's.
    """
    if pathlib.Path(model_dir).exists() and not pathlib.Path(model_dir).is_dir():
        raise UserError(f"--model_dir={model_dir} is a file: give a folder for the run (a new one, or a run)")
    stored, raw = md.stored_config(model_dir)
    if raw is not None and "converted_from" in raw:
        raise UserError(
            f"--model_dir={model_dir} holds a converted model, not a training run: fine-tune it with "
            f"--init_from={model_dir} and a new --model_dir"
        )
    if stored is not None:
        if preset_given and raw.get("preset") != preset_name:
            raise UserError(
                f"--preset={preset_name} differs from the run in {model_dir} "
                f"(preset={raw.get('preset')}): use a new --model_dir to start another run"
            )
        for name, value in overrides.items():
            section = config_lib.FLAG_SECTIONS[name]
            if section in _FIXED_SECTIONS and getattr(getattr(stored, section), name) != value:
                raise UserError(
                    f"--{name}={value} differs from the run in {model_dir} "
                    f"({name}={getattr(getattr(stored, section), name)}): a run resumes with its own model "
                    "and data; drop the flag, or use a new --model_dir to start another run"
                )
        for name in _LORA_FIELDS:
            theirs = getattr(stored.train, name)
            if (
                name in overrides
                and overrides[name] != theirs
                and (stored.train.lora_rank or name == "lora_rank")
            ):
                raise UserError(
                    f"--{name}={overrides[name]} differs from the run in {model_dir} ({name}={theirs}): "
                    "a run resumes with its own adapters and their base; drop the flag, or use a new "
                    "--model_dir"
                )
        cfg = stored.replace(**{k: v for k, v in overrides.items() if config_lib.FLAG_SECTIONS[k] == "train"})
        return cfg, raw.get("preset", preset_name)
    cfg = config_lib.preset(preset_name).replace(**overrides)
    if cfg.train.init_from:
        cfg = _inherit(cfg, overrides)
    if shards.is_prepared(cfg.data.corpus):
        cfg = _from_dataset(cfg, overrides)
    elif cfg.data.corpus != "tiny_shakespeare" and not cfg.data.corpus.startswith(corpus.TFDS_PREFIX):
        # A missing path is one line now, before TensorFlow loads (TFDS, which tiny_shakespeare
        # may download through, loads it).
        corpus.resolve(cfg.data.corpus)
    return cfg, preset_name


def _from_dataset(cfg, overrides):
    """A run on a prepared dataset takes its tokenizer and split from the dataset's manifest."""
    path = cfg.data.corpus
    settings = shards.PreparedDataset(path).manifest["settings"]
    theirs = {name: settings[name] for name in _DATASET_FIELDS}
    for name, value in theirs.items():
        if name in overrides and overrides[name] != value:
            raise UserError(
                f"--{name}={overrides[name]} differs from the prepared dataset {path} ({name}={value}): "
                "drop the flag, or prepare the corpus again with it"
            )
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **theirs))


def _inherit(cfg, overrides):
    """A fine-tuning run keeps its source's architecture and tokenizer."""
    source_dir = cfg.train.init_from
    source, _ = md.stored_config(source_dir)
    if source is None:
        raise UserError(
            f"--init_from={source_dir} holds no config.json: give the model directory "
            "of a finished or checkpointed training run"
        )
    if cfg.train.lora_rank and source.model.model != "transformer":
        raise UserError(
            f"--lora_rank={cfg.train.lora_rank} adapts a Transformer; --init_from={source_dir} is a "
            f"{source.model.model}: drop --lora_rank to fine-tune every weight"
        )
    if cfg.train.lora_rank and source.train.lora_rank:
        raise UserError(
            f"--init_from={source_dir} is a LoRA run: LoRA on it would stack adapters; fine-tune it "
            "without --lora_rank (its adapters are merged), or give its base run"
        )
    context = source.model.resolved_context if source.model.model == "transformer" else 0
    for name, value in overrides.items():
        if name == "dropout" or (name == "seq_len" and context):
            continue  # a Transformer keeps its positions and may train on shorter windows
        if name == "context":
            theirs = context
        elif name in _INHERITED_DATA_FIELDS:
            theirs = getattr(source.data, name)
        elif config_lib.FLAG_SECTIONS[name] == "model":
            theirs = getattr(source.model, name)
        else:
            continue
        if theirs != value:
            raise UserError(
                f"--{name}={value} differs from --init_from={source_dir} ({name}={theirs}): "
                "fine-tuning keeps the architecture and tokenizer of the run it starts from; drop the flag"
            )
    model = dataclasses.replace(
        source.model,
        dropout=cfg.model.dropout if "dropout" in overrides else source.model.dropout,
        seq_len=overrides.get("seq_len", source.model.seq_len) if context else source.model.seq_len,
        context=context,
    )
    data = dataclasses.replace(cfg.data, tokenizer=source.data.tokenizer, vocab_size=source.data.vocab_size)
    return dataclasses.replace(cfg, model=model, data=data)
