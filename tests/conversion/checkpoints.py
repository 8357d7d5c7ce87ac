"""Small random GPT-2 checkpoints made locally, in Hugging Face's format and as a keras-hub preset.

Hugging Face's: config.json and model.safetensors written from NumPy arrays with `safetensors`,
vocab.json and merges.txt of a byte-level BPE trained on tiny Shakespeare with Hugging Face's
`tokenizers`. keras-hub's: a `GPT2Backbone` and a `GPT2Tokenizer`, saved with `save_to_preset`.
"""

import json
import pathlib

import numpy as np

VOCAB_SIZE = 400
SHAPE = dict(n_layer=2, n_head=2, n_embd=32, n_positions=64)
# Weights of GPT-2's initialisation (0.02) give nearly equal logits; larger ones give clear
# greedy choices.
WEIGHT_STD = 0.3
END_OF_TEXT = "<|endoftext|>"


def train_text():
    from tests.generation.tiny_models import corpus_text

    return corpus_text()


def write_tokenizer_files(folder):
    """vocab.json and merges.txt of a byte-level BPE trained by Hugging Face's tokenizers."""
    from tokenizers.implementations import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False)
    tokenizer.train_from_iterator(
        [train_text()], vocab_size=VOCAB_SIZE, special_tokens=[END_OF_TEXT], show_progress=False
    )
    tokenizer.save_model(str(folder))
    return json.loads((pathlib.Path(folder) / "vocab.json").read_text(encoding="utf-8"))


def hf_tensors(vocab_size, seed=0, n_layer=2, n_head=2, n_embd=32, n_positions=64):
    """GPT-2's tensors by their Hugging Face names, random normal(0, WEIGHT_STD), norms near 1."""
    rng = np.random.default_rng(seed)

    def normal(*shape, std=WEIGHT_STD):
        return rng.normal(0.0, std, shape).astype(np.float32)

    d = n_embd
    tensors = {"wte.weight": normal(vocab_size, d), "wpe.weight": normal(n_positions, d)}
    for i in range(n_layer):
        tensors.update(
            {
                f"h.{i}.ln_1.weight": 1.0 + normal(d, std=0.1),
                f"h.{i}.ln_1.bias": normal(d, std=0.1),
                f"h.{i}.attn.c_attn.weight": normal(d, 3 * d),
                f"h.{i}.attn.c_attn.bias": normal(3 * d, std=0.1),
                f"h.{i}.attn.c_proj.weight": normal(d, d),
                f"h.{i}.attn.c_proj.bias": normal(d, std=0.1),
                f"h.{i}.ln_2.weight": 1.0 + normal(d, std=0.1),
                f"h.{i}.ln_2.bias": normal(d, std=0.1),
                f"h.{i}.mlp.c_fc.weight": normal(d, 4 * d),
                f"h.{i}.mlp.c_fc.bias": normal(4 * d, std=0.1),
                f"h.{i}.mlp.c_proj.weight": normal(4 * d, d),
                f"h.{i}.mlp.c_proj.bias": normal(d, std=0.1),
            }
        )
    tensors.update({"ln_f.weight": 1.0 + normal(d, std=0.1), "ln_f.bias": normal(d, std=0.1)})
    return tensors


def hf_config(vocab_size, n_layer=2, n_head=2, n_embd=32, n_positions=64, **overrides):
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": vocab_size,
        "n_positions": n_positions,
        "n_ctx": n_positions,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "bos_token_id": 0,
        "eos_token_id": 0,
        **overrides,
    }


def write_hf_checkpoint(folder, seed=0, **shape):
    """A Hugging Face GPT-2 folder of random weights; returns its folder."""
    from safetensors.numpy import save_file

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer_files(folder)
    shape = {**SHAPE, **shape}
    (folder / "config.json").write_text(
        json.dumps(hf_config(len(vocab), **shape), indent=2), encoding="utf-8"
    )
    # Tied, as transformers writes it: the head is the token embedding.
    save_file(
        hf_tensors(len(vocab), seed=seed, **shape),
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    return folder


def write_keras_hub_preset(folder, seed=1):
    """A keras-hub preset of a random GPT2Backbone and its GPT2Tokenizer; returns its folder."""
    import keras
    import keras_hub

    folder = pathlib.Path(folder)
    vocab_dir = folder.parent / f"{folder.name}_tokenizer_files"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer_files(vocab_dir)
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocab),
        num_layers=SHAPE["n_layer"],
        num_heads=SHAPE["n_head"],
        hidden_dim=SHAPE["n_embd"],
        intermediate_dim=4 * SHAPE["n_embd"],
        max_sequence_length=SHAPE["n_positions"],
        dropout=0.0,
    )
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        weight.assign(weight.numpy() + rng.normal(0.0, WEIGHT_STD, weight.shape).astype(np.float32))
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=str(vocab_dir / "vocab.json"), merges=str(vocab_dir / "merges.txt")
    )
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))
    return folder
