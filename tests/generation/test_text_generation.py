"""`generate` as users call it: prompts in, continuations out."""

import numpy as np
import pytest

from tests.generation.tiny_models import SEQ_LEN, char_tokenizer, random_model


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return random_model("transformer", tokenizer.vocab_size)


def test_continuations_have_max_new_tokens_and_exclude_the_prompt(model, tokenizer):
    from lm_keras.generation import generate

    texts = generate(model, tokenizer, ["ROMEO:", "O"], max_new_tokens=12, temperature=0.0)
    assert [len(tokenizer.encode(t)) for t in texts] == [12, 12]
    assert generate(model, tokenizer, ["ROMEO:" + texts[0][:5]], max_new_tokens=7, temperature=0.0) == [
        texts[0][5:]
    ]


def test_empty_prompt_starts_from_a_newline(model, tokenizer):
    from lm_keras.generation import generate

    assert generate(model, tokenizer, [""], max_new_tokens=10, temperature=0.0) == generate(
        model, tokenizer, ["\n"], max_new_tokens=10, temperature=0.0
    )


def test_characters_outside_the_vocabulary_are_the_unknown_id(model, tokenizer):
    from lm_keras.generation import generate

    assert (
        tokenizer.encode("a€").tolist() == tokenizer.encode("a😀").tolist() == [tokenizer.encode("a")[0], 0]
    )
    assert generate(model, tokenizer, ["a€"], max_new_tokens=10, temperature=0.0) == generate(
        model, tokenizer, ["a😀"], max_new_tokens=10, temperature=0.0
    )


def test_a_prompt_longer_than_the_context_keeps_its_last_tokens(model, tokenizer):
    from lm_keras.generation import encode_prompts, generate

    long_prompt = "First Citizen:\nBefore we proceed"  # 32 characters, context 16
    encoded = encode_prompts(tokenizer, [long_prompt, "Hi"], SEQ_LEN)
    assert encoded.dropped == [len(long_prompt) - SEQ_LEN, 0]
    assert tokenizer.decode(encoded.ids[0]) == long_prompt[-SEQ_LEN:]
    assert generate(model, tokenizer, [long_prompt], max_new_tokens=8, temperature=0.0) == generate(
        model, tokenizer, [long_prompt[-SEQ_LEN:]], max_new_tokens=8, temperature=0.0
    )


def test_the_trainers_sampling_call(model, tokenizer):
    from lm_keras.generation import generate

    texts = generate(model, tokenizer, ["\n"], max_new_tokens=20, temperature=0.8, top_k=200, seed=1337)
    assert len(texts) == 1 and len(tokenizer.encode(texts[0])) == 20
    assert texts == generate(
        model, tokenizer, ["\n"], max_new_tokens=20, temperature=0.8, top_k=200, seed=1337
    )


def test_nothing_to_generate(model, tokenizer):
    from lm_keras.generation import generate

    assert generate(model, tokenizer, ["a", "b"], max_new_tokens=0) == ["", ""]
    assert generate(model, tokenizer, [], max_new_tokens=5) == []


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0"),
        (dict(temperature=-0.5), "temperature must be >= 0"),
        (dict(top_k=-2), "top_k must be an int >= 0"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(seed=-3), "seed must be an int"),
    ],
)
def test_bad_settings_are_one_line_user_errors(model, tokenizer, settings, message):
    from lm_keras.errors import UserError
    from lm_keras.generation import generate

    with pytest.raises(UserError, match=message):
        generate(model, tokenizer, ["a"], **settings)


def test_prompts_must_be_a_list_of_strings(model, tokenizer):
    from lm_keras.errors import UserError
    from lm_keras.generation import generate

    with pytest.raises(UserError, match="prompts must be a list of str"):
        generate(model, tokenizer, "ROMEO:")


def test_default_jit_compile_uses_xla_for_long_generations():
    from lm_keras.generation import default_jit_compile

    # XLA's 2-4 s compile pays from about 1,000 new tokens on (the docstring's measurements).
    assert [default_jit_compile(n) for n in (1, 200, 999, 1000, 5000)] == [False, False, False, True, True]


def test_the_unknown_id_is_never_generated(tokenizer):
    """The unknown id stands for every character outside the vocabulary and decodes to U+FFFD:
    a char model fine-tuned on text full of such characters (notebook 4) predicts it, and greedy
    decoding then repeats it. Generation draws from the tokens that are text."""
    import tensorflow as tf

    from lm_keras.generation import generate

    model = random_model("lstm", tokenizer.vocab_size)
    bias = model.output_projection.bias
    bias.assign(bias.numpy() + 50.0 * (np.arange(tokenizer.vocab_size) == tokenizer.unknown_id))
    # Nor may it end: these rows run to max_new_tokens.
    bias.assign(bias.numpy() - 50.0 * (np.arange(tokenizer.vocab_size) == getattr(tokenizer, "eot_id", None)))
    ids = tokenizer.encode("The ")
    assert np.argmax(model(ids[None]).numpy()[0, -1]) == tokenizer.unknown_id
    greedy = generate(model, tokenizer, ["The "], max_new_tokens=6, temperature=0.0)[0]
    # The plain loop: the argmax among the other tokens, one token at a time.
    run = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, None], tf.int32)]
    )
    expected = list(ids)
    for _ in range(6):
        logits = run(np.array([expected], np.int32)).numpy()[0, -1]
        logits[tokenizer.unknown_id] = -np.inf
        expected.append(int(np.argmax(logits)))
    assert greedy == tokenizer.decode(expected[len(ids) :])
    sampled = generate(
        model, tokenizer, ["The ", "ROMEO:"], max_new_tokens=30, temperature=1.5, top_k=0, seed=2
    )
    assert all(len(text) == 30 and "\ufffd" not in text for text in sampled)
    # A prompt keeps its own unknown characters; only new tokens skip the unknown id.
    assert "\ufffd" not in generate(model, tokenizer, ["a€"], max_new_tokens=8, temperature=0.0)[0]


def test_one_padding_rule_for_generate_and_the_export():
    import tensorflow as tf

    from lm_keras.generation.decode_loop import bucket

    sizes = [0, 1, 2, 3, 5, 8, 9, 200, 1000, 1024, 1025, 2**20 + 1]
    expected = [1, 1, 2, 4, 8, 8, 16, 256, 1024, 1024, 2048, 2**21]
    assert [bucket(n) for n in sizes] == expected
    assert [bucket(np.int64(n)) for n in sizes] == expected
    assert [int(bucket(tf.constant(n))) for n in sizes] == expected
    traced = tf.function(bucket, input_signature=[tf.TensorSpec([], tf.int32)])
    assert [int(traced(n)) for n in sizes] == expected
