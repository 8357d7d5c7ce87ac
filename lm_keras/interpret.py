"""Attention maps of a TransformerLM: compute them for a text, and plot them."""

import numpy as np


def attention_maps(model, tokenizer, text):
    """The attention weights of every block and head of `model` on `text`.

    Args:
        model: a `TransformerLM` (anything with `attention_maps(token_ids)` and
            `seq_len`).
        tokenizer: has `encode(text) -> int32 ids` and `decode(ids) -> str`.
        text: str. Texts longer than the model's context keep their first
            `model.seq_len` tokens.

    Returns:
        `(tokens, maps)`: `tokens` a list of `T` strings, each token decoded on its
        own; `maps` a float32 array `(L, H, T, T)` where `maps[l, h, i, j]` is how
        much position `i` attends to position `j` in head `h` of block `l` (each
        row sums to 1; entries above the diagonal are 0).

    Raises:
        ValueError: if `text` encodes to no tokens.
    """
    ids = np.asarray(tokenizer.encode(text), dtype=np.int32).reshape(-1)[: model.seq_len]
    if ids.size == 0:
        raise ValueError(f"text must encode to at least one token; received text={text!r}")
    maps = np.asarray(model.attention_maps(ids[None, :]), dtype=np.float32)[0]  # (L, H, T, T)
    tokens = [tokenizer.decode(ids[i : i + 1]) for i in range(ids.size)]
    return tokens, maps


def plot_attention_maps(tokens, maps, layers=None, heads=None):
    """Plots attention maps as a grid of heatmaps, one row per block, one column per head.

    Queries run down each map's vertical axis and keys along its horizontal axis,
    both labelled with the tokens (newlines shown as `\\n`, spaces as `␣`).

    Args:
        tokens: list of `T` token strings, as from `attention_maps`.
        maps: array `(L, H, T, T)`, as from `attention_maps`.
        layers: block indices to plot; `None` means all.
        heads: head indices to plot; `None` means all.

    Returns:
        A `matplotlib.figure.Figure` (not registered with pyplot, so it does not
        leak; Jupyter displays it, `fig.savefig(path)` writes it).

    Raises:
        ValueError: if the shapes disagree or an index is out of range.
    """
    from matplotlib.figure import Figure

    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[2] != maps.shape[3] or maps.shape[2] != len(tokens):
        raise ValueError(
            "maps must be (layers, heads, T, T) with T = len(tokens); received "
            f"maps.shape={maps.shape}, len(tokens)={len(tokens)}"
        )
    layers = list(range(maps.shape[0])) if layers is None else list(layers)
    heads = list(range(maps.shape[1])) if heads is None else list(heads)
    for name, chosen, count in (("layers", layers, maps.shape[0]), ("heads", heads, maps.shape[1])):
        if not chosen or any(not 0 <= i < count for i in chosen):
            raise ValueError(f"{name} must be indices in [0, {count}); received {name}={chosen}")

    labels = [token.replace("\n", "\\n").replace(" ", "␣") for token in tokens]
    size = 1.0 + 0.18 * len(tokens)
    fig = Figure(figsize=(size * len(heads), size * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), len(heads), squeeze=False)
    for row, layer in enumerate(layers):
        for col, head in enumerate(heads):
            ax = axes[row, col]
            image = ax.imshow(maps[layer, head], vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            if col == 0:
                ax.set_ylabel("query")
            if row == len(layers) - 1:
                ax.set_xlabel("key")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return fig
