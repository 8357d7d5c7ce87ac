"""keras-hub preset folders of GPT-2 (what `GPT2Backbone` and `GPT2Tokenizer` `save_to_preset` write)."""

import pathlib
import tempfile

from lm_keras.conversion import huggingface
from lm_keras.errors import UserError

METADATA_FILE = "metadata.json"
BACKBONE = "GPT2Backbone"


def is_preset(folder):
    """Whether `folder` looks like a keras-hub preset (config.json names a registered class)."""
    folder = pathlib.Path(folder)
    config = folder / huggingface.CONFIG_FILE
    return (
        (folder / METADATA_FILE).is_file()
        and config.is_file()
        and "registered_name" in huggingface.read_json(config)
    )


def read_preset(folder):
    """(Hugging Face config dict, tensors, tokenizer) of a keras-hub GPT-2 preset.

    keras-hub loads the preset, and its own exporter (`export_to_transformers`)
    writes it in Hugging Face's format, which `huggingface.read_checkpoint` reads:
    one way into lm_keras for both formats, and keras-hub's mapping of its layers.
    """
    folder = pathlib.Path(folder)
    class_name = huggingface.read_json(folder / huggingface.CONFIG_FILE).get("class_name")
    if class_name != BACKBONE:
        raise UserError(
            f"--source={folder} is a keras-hub preset of {class_name}; lm_keras converts GPT-2 only "
            f"({BACKBONE})"
        )
    try:
        import keras_hub
    except ImportError:
        raise UserError(
            "converting a keras-hub preset needs keras-hub: pip install 'lm_keras[bench]'"
        ) from None
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(folder))
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(folder))
    except (ValueError, OSError, KeyError) as e:
        raise UserError(f"keras-hub cannot load the preset --source={folder}: {e}") from None
    with tempfile.TemporaryDirectory(prefix="lm_keras_keras_hub_") as tmp:
        backbone.export_to_transformers(tmp)
        tokenizer.export_to_transformers(tmp)
        return huggingface.read_checkpoint(tmp)
