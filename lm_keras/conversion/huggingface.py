"""Hugging Face GPT-2 folders: config.json, model.safetensors, vocab.json and merges.txt."""

import json
import pathlib

from lm_keras.errors import UserError
from lm_keras.tokenizers.byte_level_bpe_tokenizer import (
    END_OF_TEXT,
    INSTALL_HINT,
    MERGES_FILE,
    VOCAB_FILE,
    ByteLevelBPETokenizer,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"


def is_checkpoint(folder):
    """Whether `folder` looks like a Hugging Face model folder (its config.json has model_type)."""
    config = pathlib.Path(folder) / CONFIG_FILE
    return config.is_file() and "model_type" in read_json(config)


def read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); copy the file again") from None


def read_checkpoint(folder):
    """(config.json as a dict, {tensor name: NumPy array}, ByteLevelBPETokenizer) of a GPT-2 folder."""
    folder = pathlib.Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, MERGES_FILE):
        if not (folder / name).is_file():
            hint = " (convert pytorch_model.bin to safetensors first)" if name == WEIGHTS_FILE else ""
            raise UserError(
                f"--source={folder} has no {name}: a Hugging Face GPT-2 folder holds {CONFIG_FILE}, "
                f"{WEIGHTS_FILE}, {VOCAB_FILE} and {MERGES_FILE}{hint}"
            )
    config = read_json(folder / CONFIG_FILE)
    tokenizer_config = folder / TOKENIZER_CONFIG_FILE
    if tokenizer_config.is_file() and read_json(tokenizer_config).get("add_prefix_space"):
        raise UserError(
            f"{tokenizer_config} has add_prefix_space=true; lm_keras's gpt2_bpe tokenizer encodes text "
            "as written (GPT-2's add_prefix_space=false)"
        )
    safetensors_numpy = _import_safetensors()
    try:
        tensors = safetensors_numpy.load_file(str(folder / WEIGHTS_FILE))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise UserError(
            f"{folder / WEIGHTS_FILE} cannot be read as safetensors ({e}); copy it again"
        ) from None
    tokenizer = ByteLevelBPETokenizer.from_files(folder / VOCAB_FILE, folder / MERGES_FILE)
    return config, tensors, tokenizer


def write_checkpoint(folder, config, tensors, tokenizer):
    """Writes a GPT-2 folder that `transformers` (GPT2LMHeadModel, GPT2TokenizerFast) loads."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    _import_safetensors().save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    tokenizer.save_files(folder)
    special = (
        {}
        if tokenizer.end_of_text_id is None
        else dict.fromkeys(("bos_token", "eos_token", "unk_token"), END_OF_TEXT)
    )
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": config["n_positions"],
        "add_prefix_space": False,
        **special,
    }
    (folder / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8"
    )
    (folder / SPECIAL_TOKENS_FILE).write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


def _import_safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise UserError(
            f"reading and writing Hugging Face checkpoints needs safetensors: {INSTALL_HINT}"
        ) from None
    return safetensors.numpy
