"""Layers: multi-head self-attention, position encodings (learned, sinusoidal, rotary), Transformer blocks."""

from lm_keras.layers.multi_head_self_attention import MultiHeadSelfAttention
from lm_keras.layers.position_embedding import PositionEmbedding
from lm_keras.layers.rotary_embedding import RotaryEmbedding
from lm_keras.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from lm_keras.layers.transformer_block import TransformerBlock

__all__ = [
    "MultiHeadSelfAttention",
    "PositionEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionEncoding",
    "TransformerBlock",
]
