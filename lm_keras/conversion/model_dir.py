"""`convert`: a GPT-2 folder -> a model directory; `export_huggingface`: the way back."""

import dataclasses
import pathlib

from lm_keras import model_dir as md
from lm_keras.config import Config, DataConfig
from lm_keras.conversion import gpt2, huggingface, keras_hub_preset
from lm_keras.errors import UserError
from lm_keras.files import replace_dir_atomic


def check_source(source):
    """The folder of `--source`, refused in one line when it is none (TensorFlow-free)."""
    folder = pathlib.Path(source)
    if not folder.is_dir():
        raise UserError(
            f"--source={source} is not a folder: pass a Hugging Face GPT-2 folder or a keras-hub preset"
        )
    return folder


def read_source(source):
    """(format name, Hugging Face config dict, tensors, tokenizer) of a GPT-2 folder of either format."""
    folder = check_source(source)
    if keras_hub_preset.is_preset(folder):
        return ("keras_hub", *keras_hub_preset.read_preset(folder))
    if huggingface.is_checkpoint(folder) or (folder / huggingface.WEIGHTS_FILE).is_file():
        return ("huggingface", *huggingface.read_checkpoint(folder))
    raise UserError(
        f"--source={source} is neither a Hugging Face GPT-2 folder (config.json with model_type, "
        "model.safetensors, vocab.json, merges.txt) nor a keras-hub preset (config.json, metadata.json)"
    )


def convert(source, model_dir, log=print):
    """Converts the GPT-2 checkpoint in `source` into a new model directory `model_dir`.

    The directory is written beside its final place and renamed into it when
    complete, so a failed conversion leaves nothing; an existing non-empty
    `model_dir` is refused, never overwritten.

    Returns:
        The `TrainedModel` of the new directory (its model, tokenizer and config).
    """
    from lm_keras.models import build_model

    md.check_new(model_dir, "--model_dir")
    source_format, hf_config, tensors, tokenizer = read_source(source)
    model_config = gpt2.model_config(hf_config, source)
    if model_config.vocab_size != tokenizer.vocab_size:
        raise UserError(
            f"{source}: config.json has vocab_size={model_config.vocab_size} but vocab.json has "
            f"{tokenizer.vocab_size} tokens; the model and tokenizer files are from different models"
        )
    config = Config(
        model=model_config, data=DataConfig(tokenizer=tokenizer.kind, vocab_size=tokenizer.vocab_size)
    )
    model = build_model(config.model)
    gpt2.load_weights(model, tensors, source)
    del tensors
    log(
        f"{source_format} GPT-2: {model_config.num_layers} layers, {model_config.num_heads} heads, "
        f"{model_config.hidden_dim} wide, context {model_config.seq_len}, vocab {model_config.vocab_size}, "
        f"{model.count_params():,} parameters"
    )
    origin = {"format": source_format, "source": str(pathlib.Path(source).resolve()), "config": hf_config}
    return md.write_converted(model_dir, config, tokenizer, model, origin)


def export_huggingface(model_dir, export_dir):
    """Writes the model of `model_dir` as a Hugging Face GPT-2 folder `export_dir`.

    Refuses, with one line naming the option, a model that GPT-2 cannot express. The
    folder is written beside its final place and renamed into it when complete; an
    existing non-empty `export_dir` is refused.

    Returns:
        pathlib.Path of the folder.
    """
    md.check_new(export_dir, "--export_dir")
    gpt2.check_exportable(md.read_config(model_dir)[0])  # before loading anything
    trained = md.load_trained(model_dir, merge_lora=True)  # a LoRA run's adapters folded in
    model_config = dataclasses.replace(trained.config.model, vocab_size=trained.tokenizer.vocab_size)
    replace_dir_atomic(
        lambda tmp: huggingface.write_checkpoint(
            tmp,
            gpt2.hf_config(model_config, trained.tokenizer.end_of_text_id),
            gpt2.weights(trained.model),
            trained.tokenizer,
        ),
        export_dir,
    )
    return pathlib.Path(export_dir)
