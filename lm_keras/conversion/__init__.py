"""Pre-trained GPT-2 into and out of lm_keras model directories.

    convert("gpt2/", "runs/gpt2")                          # Hugging Face folder or keras-hub preset
    export_huggingface("runs/gpt2_shakespeare", "hf/gpt2_shakespeare")

A converted model directory is an ordinary one (config.json, tokenizer/, checkpoints/):
train --init_from, evaluate, generate, export, serve and lm_keras.interpret work on it.
"""

from lm_keras.conversion.model_dir import convert, export_huggingface

__all__ = ["convert", "export_huggingface"]
