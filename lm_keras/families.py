"""The model families: one record each of what differs between them. TensorFlow-free.

Everything that depends on which family a model is (how it is built, the view of the data
it trains on, how it decodes, when XLA pays) is read from its `Family` here, so no module
switches on family names or model classes of its own. A family's builder and decoder are
named as "module:attribute" and imported when first used, so this module (and the
commands that check flags with it) load no TensorFlow.
"""

import dataclasses
import functools
import importlib


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: its `--model` name.
        model_class: the class name its models are instances of (the documented model is a
            Keras `Sequential`).
        view: the data it trains on: "next_token" (a target at every position, logits out)
            or "many_to_one" (one target per window, softmax probabilities out, as documented).
        xla_devices: the devices where `--jit_compile=auto` compiles its steps with XLA.
        builder: "module:callable" building it from a `ModelConfig`.
        decoder_path: "module:class" of its generation `Decoder`.
        segments: whether its models take `segment_ids`, so that packed examples attend
            only within themselves (the Transformer); the LSTMs carry their state across.
    """

    name: str
    model_class: str
    view: str
    xla_devices: frozenset
    builder: str
    decoder_path: str
    segments: bool = False

    def build(self, model_config):
        return _load(self.builder)(model_config)

    def decoder(self, model, pad_id=0):
        """The `Decoder` of `model`; `pad_id` left-pads the windowed family's short prompts."""
        decoder = _load(self.decoder_path)
        return decoder(model, pad_id=pad_id) if self.view == "many_to_one" else decoder(model)


# XLA where benchmarks/RESULTS.md measured it faster: on CPU the Transformer and the
# efficient LSTMLM train about 1.4x faster with it, the documented Sequential LSTM about 2x
# slower. On GPU (not measured here) only the Transformer gets it, because Keras runs LSTM
# layers on cuDNN's fused kernels only outside XLA. TPUs need XLA for everything.
FAMILIES = {
    f.name: f
    for f in (
        Family(
            "transformer",
            "TransformerLM",
            "next_token",
            frozenset({"CPU", "GPU", "TPU"}),
            "lm_keras.models.transformer_lm:TransformerLM.from_model_config",
            "lm_keras.generation.transformer_decoder:TransformerDecoder",
            segments=True,
        ),
        Family(
            "lstm",
            "LSTMLM",
            "next_token",
            frozenset({"CPU", "TPU"}),
            "lm_keras.models.lstm_lm:LSTMLM.from_model_config",
            "lm_keras.generation.recurrent_decoder:RecurrentDecoder",
        ),
        Family(
            "documented_lstm",
            "Sequential",
            "many_to_one",
            frozenset({"TPU"}),
            "lm_keras.models.factory:documented_lstm_from_config",
            "lm_keras.generation.window_decoder:WindowDecoder",
        ),
    )
}


def family(name):
    """The `Family` of a `--model` name."""
    if name not in FAMILIES:
        raise ValueError(f"model must be one of {', '.join(FAMILIES)}; received model={name!r}")
    return FAMILIES[name]


def family_of(model):
    """The `Family` of a built model, by its class (a subclass counts as its base's family)."""
    names = {cls.__name__ for cls in type(model).__mro__}
    for f in FAMILIES.values():
        if f.model_class in names:
            return f
    raise TypeError(
        "model must be a TransformerLM, an LSTMLM or the documented LSTM (a fixed-window "
        f"Sequential); received {type(model).__name__}"
    )


def device_kind():
    """TPU, GPU or CPU: what this process computes on."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "TPU"
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def resolve_jit(flag, name, device=None):
    """XLA on or off for `--jit_compile` (auto, true, false) and a family's name; `auto`
    follows the family's `xla_devices`."""
    if flag in ("true", "false"):
        return flag == "true"
    return (device or device_kind()) in family(name).xla_devices


@functools.cache
def _load(path):
    # Cached: a decoder is looked up again inside traced functions, where AutoGraph would try
    # (and fail, with a warning) to convert importlib's machinery.
    module, _, attribute = path.partition(":")
    value = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value
