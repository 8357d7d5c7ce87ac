"""`generate` as users call it: prompts in, continuations out."""

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
