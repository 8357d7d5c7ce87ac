import io

import matplotlib.figure
import numpy as np
import pytest

from lm_keras.interpret import attention_maps, plot_attention_maps
from lm_keras.models import TransformerLM


class CharTokenizer:
    """A stand-in with the tokenizer interface: encode(text) -> int32 ids, decode(ids) -> str."""

    def __init__(self, alphabet):
        self.alphabet = alphabet

    def encode(self, text):
        return np.array([self.alphabet.index(c) for c in text], dtype=np.int32)

    def decode(self, ids):
        return "".join(self.alphabet[int(i)] for i in ids)


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = CharTokenizer(" \nabcdefghijklmnopqrstuvwxyz")
    model = TransformerLM(vocab_size=28, num_layers=2, num_heads=3, hidden_dim=12, mlp_dim=24, seq_len=16)
    return model, tokenizer


def test_attention_maps_of_a_text(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens, maps = attention_maps(model, tokenizer, "to be\nor not")
    assert tokens == list("to be\nor not")
    assert maps.shape == (2, 3, 12, 12) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.triu(maps, k=1), 0.0)  # causal
    np.testing.assert_allclose(maps[:, :, 0, 0], 1.0, atol=1e-6)  # the first token sees only itself
    ids = tokenizer.encode("to be\nor not")[None]
    np.testing.assert_allclose(maps, np.asarray(model.attention_maps(ids))[0], atol=1e-6)


def test_long_texts_keep_the_first_context(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens, maps = attention_maps(model, tokenizer, "abcdefghijklmnopqrstuvwxyz")
    assert tokens == list("abcdefghijklmnop") and maps.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="text must encode to at least one token; received text=''"):
        attention_maps(model, tokenizer, "")


def test_plot_has_one_map_per_layer_and_head_with_tokens_on_both_axes(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens, maps = attention_maps(model, tokenizer, "to be\nor")
    fig = plot_attention_maps(tokens, maps, layers=[1], heads=[0, 2])
    assert isinstance(fig, matplotlib.figure.Figure)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["layer 1, head 0", "layer 1, head 2"]
    labels = ["t", "o", "␣", "b", "e", "\\n", "o", "r"]
    for ax, head in zip(axes, [0, 2]):
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
        assert [t.get_text() for t in ax.get_yticklabels()] == labels
        np.testing.assert_array_equal(ax.images[0].get_array(), maps[1, head])
    full = plot_attention_maps(tokens, maps)
    assert len([ax for ax in full.axes if ax.get_title()]) == 2 * 3
    png = io.BytesIO()
    full.savefig(png, format="png")
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(png.getvalue()) > 10_000


def test_plot_rejects_mismatched_inputs(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens, maps = attention_maps(model, tokenizer, "abc")
    with pytest.raises(ValueError, match=r"maps must be \(layers, heads, T, T\) with T = len\(tokens\)"):
        plot_attention_maps(tokens[:2], maps)
    with pytest.raises(ValueError, match=r"received maps.shape=\(2, 3, 3, 2\)"):  # not square
        plot_attention_maps(tokens, maps[..., :2])
    with pytest.raises(ValueError, match=r"heads must be indices in \[0, 3\); received heads=\[3\]"):
        plot_attention_maps(tokens, maps, heads=[3])
