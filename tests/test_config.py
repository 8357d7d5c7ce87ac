"""The config's checks: every bad value is a UserError (one line from the commands) naming it."""

import pytest

from lm_keras import config as config_lib
from lm_keras import tokenizers
from lm_keras.errors import UserError


@pytest.mark.parametrize(
    "section, fields, message",
    [
        ("model", {"model": "gru"}, r"--model must be one of transformer, lstm"),
        ("model", {"dropout": 1.5}, r"--dropout must be in \[0, 1\); received dropout=1.5"),
        ("model", {"vocab_size": -1}, r"--vocab_size must be >= 0; received vocab_size=-1"),
        (
            "data",
            {"tokenizer": "bpe"},
            r"--vocab_size is required for --tokenizer=bpe; received vocab_size=0",
        ),
        (
            "data",
            {"tokenizer": "unigram", "vocab_size": 100},
            r"--vocab_size must be at least 259 for --tokenizer=unigram .* received vocab_size=100",
        ),
        ("train", {"batch_size": 0}, r"--batch_size must be > 0; received batch_size=0"),
        ("train", {"min_learning_rate": 1.0}, r"--min_learning_rate must not exceed --learning_rate"),
        ("train", {"schedule": "step"}, r"--schedule must be one of cosine, constant"),
    ],
)
def test_bad_values_are_user_errors_that_name_the_flag(section, fields, message):
    with pytest.raises(UserError, match=message):
        config_lib.Config.from_dict({section: fields})


def test_an_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match=r"--preset must be one of .*; received preset='gpt5'"):
        config_lib.preset("gpt5")


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_the_smallest_sentencepiece_vocab_size_it_accepts_trains(kind):
    smallest = config_lib.MIN_SENTENCEPIECE_VOCAB_SIZE
    assert config_lib.DataConfig(tokenizer=kind, vocab_size=smallest).vocab_size == smallest
    with pytest.raises(UserError, match=f"at least {smallest}"):
        config_lib.DataConfig(tokenizer=kind, vocab_size=smallest - 1)
    # A text of one character needs exactly that many pieces.
    assert tokenizers.train(kind, "a", vocab_size=smallest).vocab_size == smallest
