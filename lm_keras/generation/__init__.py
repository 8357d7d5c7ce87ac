"""Text generation: samplers and compiled decoding loops for every model family.

    texts = lm_keras.generation.generate(model, tokenizer, ["ROMEO:", ""],
                                         max_new_tokens=200, temperature=0.8, top_k=200, seed=1)

`generate` runs `decode`, one `tf.while_loop` over a fixed token buffer, with the
`Decoder` of the model's family: the Transformer's key/value cache, the LSTM's
carried state, or the documented LSTM's windows. Rows stop at the tokenizer's
end-of-text id and at stop strings (`StopStrings`), and the loop ends when every
row has stopped; `generate_details` also says why each row ended and how many
tokens it generated. The exported SavedModel (`lm_keras.serving`) runs the same
`decode` in its graph.
"""

from lm_keras.generation.decode_loop import Decoded, decode
from lm_keras.generation.decoder import Decoder
from lm_keras.generation.factory import decoder_for
from lm_keras.generation.recurrent_decoder import RecurrentDecoder
from lm_keras.generation.sampling import sample_next_tokens
from lm_keras.generation.stop_strings import StopStrings
from lm_keras.generation.text_generation import (
    EMPTY_PROMPT,
    JIT_MIN_NEW_TOKENS,
    Completion,
    EncodedPrompts,
    default_jit_compile,
    encode_prompts,
    generate,
    generate_details,
)
from lm_keras.generation.transformer_decoder import TransformerDecoder
from lm_keras.generation.window_decoder import WindowDecoder

__all__ = [
    "Completion",
    "Decoded",
    "Decoder",
    "EMPTY_PROMPT",
    "JIT_MIN_NEW_TOKENS",
    "EncodedPrompts",
    "RecurrentDecoder",
    "StopStrings",
    "TransformerDecoder",
    "WindowDecoder",
    "decode",
    "decoder_for",
    "default_jit_compile",
    "encode_prompts",
    "generate",
    "generate_details",
    "sample_next_tokens",
]
