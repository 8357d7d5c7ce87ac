"""The decoding loop against the plain one-token-at-a-time loop, for every model family."""

import numpy as np
import pytest

from tests.generation.tiny_models import SEQ_LEN, char_tokenizer, random_model, reference_greedy, stops_of

KINDS = ["transformer", "lstm", "documented_lstm"]
# Different lengths in one batch; the last is longer than the context (SEQ_LEN = 16).
PROMPTS = ["ROMEO:", "", "O", "First Citizen:\nBefore"]
NEW_TOKENS = 20  # takes the 6-token prompt past the context


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module", params=KINDS)
def family(request, tokenizer):
    """(kind, model, the reference loop's greedy ids for each prompt alone)."""
    from lm_keras.generation import EMPTY_PROMPT

    kind = request.param
    model = random_model(kind, tokenizer.vocab_size)
    newline = int(tokenizer.encode("\n")[0])
    expected = [
        reference_greedy(
            model,
            kind,
            tokenizer.encode(p or EMPTY_PROMPT),
            NEW_TOKENS,
            SEQ_LEN,
            newline,
            **stops_of(tokenizer),
        )
        for p in PROMPTS
    ]
    return kind, model, expected


# XLA's loop equals the plain graph's (test_xla_and_graph_loops_sample_the_same_tokens) and the
# reference loop for every family (test_batched_greedy_equals_reference_loop_per_prompt): slow.
JIT_COMPILE = [pytest.param(True, marks=pytest.mark.slow), False]


@pytest.mark.parametrize("use_cache,jit_compile", [(True, True), (False, False)])
def test_batched_greedy_equals_reference_loop_per_prompt(family, tokenizer, use_cache, jit_compile):
    from lm_keras.generation import generate

    kind, model, expected = family
    texts = generate(
        model,
        tokenizer,
        PROMPTS,
        max_new_tokens=NEW_TOKENS,
        temperature=0.0,
        use_cache=use_cache,
        jit_compile=jit_compile,
    )
    assert [tokenizer.encode(t).tolist() for t in texts] == expected, kind


@pytest.mark.parametrize("jit_compile", JIT_COMPILE)
def test_cached_greedy_within_the_context_equals_reference_loop(tokenizer, jit_compile):
    """Prompt + new tokens fit the context: the cached loop takes no window branch."""
    from lm_keras.generation import generate

    model = random_model("transformer", tokenizer.vocab_size, seed=5)
    prompts, new_tokens = ["ROMEO:", "O"], SEQ_LEN - len("ROMEO:")
    newline = int(tokenizer.encode("\n")[0])
    expected = [
        reference_greedy(
            model, "transformer", tokenizer.encode(p), new_tokens, SEQ_LEN, newline, **stops_of(tokenizer)
        )
        for p in prompts
    ]
    texts = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=new_tokens,
        temperature=0.0,
        use_cache=True,
        jit_compile=jit_compile,
    )
    assert [tokenizer.encode(t).tolist() for t in texts] == expected


def test_cached_and_uncached_ids_are_identical_past_the_context(tokenizer):
    """The Transformer's cache falls back to full windows once the sequence outgrows the
    context; the token ids must match the uncached loop's at every position."""
    import tensorflow as tf

    from lm_keras.generation import decode, decoder_for

    model = random_model("transformer", tokenizer.vocab_size, seed=3)
    decoder = decoder_for(model)
    prompts = [tokenizer.encode(p) for p in ("To be", "or not to be,")]
    width = SEQ_LEN
    ids = np.zeros((2, width), np.int32)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = p
    args = (
        tf.constant(ids),
        tf.constant([len(p) for p in prompts]),
        40,
        40,
        [0.0, 0.0],
        [0, 0],
        [1.0, 1.0],
        tf.constant([1, 2], tf.int64),
    )
    cached = decode(decoder, *args, use_cache=True).tokens.numpy()
    uncached = decode(decoder, *args, use_cache=False).tokens.numpy()
    assert cached.shape == (2, 40)
    np.testing.assert_array_equal(cached, uncached)


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(kind, tokenizer):
    from lm_keras.generation import generate

    model = random_model(kind, tokenizer.vocab_size)
    settings = dict(max_new_tokens=20, temperature=1.0, top_k=20, top_p=0.9)
    batch = generate(model, tokenizer, ["ROMEO:", "JULIET:"], seed=7, **settings)
    assert batch == generate(model, tokenizer, ["ROMEO:", "JULIET:"], seed=7, **settings)
    # Prompt i samples with seed + i: JULIET alone with seed 8 is row 1 of the batch.
    assert generate(model, tokenizer, ["JULIET:"], seed=8, **settings) == batch[1:]
    assert generate(model, tokenizer, ["ROMEO:", "ROMEO:"], seed=7, **settings)[0] == batch[0]
    assert generate(model, tokenizer, ["ROMEO:"], seed=9, **settings) != batch[:1]
    assert [len(tokenizer.encode(t)) for t in batch] == [20, 20]


def test_xla_and_graph_loops_sample_the_same_tokens(tokenizer):
    from lm_keras.generation import generate

    model = random_model("transformer", tokenizer.vocab_size)
    settings = dict(max_new_tokens=20, temperature=0.9, top_k=0, top_p=0.95, seed=11)
    assert generate(model, tokenizer, ["ROMEO:"], jit_compile=True, **settings) == generate(
        model, tokenizer, ["ROMEO:"], jit_compile=False, **settings
    )


def test_window_decoder_left_pads_short_prompts_with_newlines(tokenizer):
    import tensorflow as tf

    from lm_keras.generation import WindowDecoder

    model = random_model("documented_lstm", tokenizer.vocab_size)
    newline = int(tokenizer.encode("\n")[0])
    decoder = WindowDecoder(model, pad_id=newline)
    ids = tokenizer.encode("ROMEO:")
    window = np.array([[newline] * (SEQ_LEN - len(ids)) + ids.tolist()], np.int32)
    expected = np.log(model(window, training=False).numpy())
    got = decoder.next_token_logits(tf.constant([ids])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_decoder_for_picks_the_family(tokenizer):
    from lm_keras.generation import RecurrentDecoder, TransformerDecoder, WindowDecoder, decoder_for

    decoders = [decoder_for(random_model(kind, tokenizer.vocab_size)) for kind in KINDS]
    assert [type(d) for d in decoders] == [TransformerDecoder, RecurrentDecoder, WindowDecoder]
    assert [d.context for d in decoders] == [SEQ_LEN, None, SEQ_LEN]
    with pytest.raises(TypeError, match="TransformerLM, an LSTMLM or the documented LSTM"):
        decoder_for(object())


@pytest.mark.parametrize("jit_compile", JIT_COMPILE)
def test_the_cache_grows_through_its_phases_and_equals_the_reference_loop(tokenizer, jit_compile):
    """Short prompts start with a cache of S/8 slots that grows to S/4, S/2 and S, then the
    loop recomputes windows past the context: each phase's first step sees what it needs."""
    import tensorflow as tf

    from lm_keras.generation import decode, decoder_for

    model = random_model("transformer", tokenizer.vocab_size, seed=4)
    decoder = decoder_for(model)
    assert decoder.cache_lengths(1, None) == [2, 4, 8, 16]
    assert decoder.cache_lengths(3, None) == [4, 8, 16]  # the prefill needs 3 slots
    assert decoder.cache_lengths(1, 6) == [2, 4, 8]  # steps at positions 0 .. 4
    assert len(decoder.phases(1, 6, use_cache=True)) == 3  # no window phase: 5 < 16
    assert len(decoder.phases(1, 18, use_cache=True)) == 5  # a window at position 16
    newline = int(tokenizer.encode("\n")[0])
    prompts = [tokenizer.encode(p) for p in ("T", "or")]
    expected = [reference_greedy(model, "transformer", p, 24, SEQ_LEN, newline) for p in prompts]
    ids = np.zeros((2, 2), np.int32)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = p
    run = tf.function(
        lambda ids, lengths: (
            decode(
                decoder, ids, lengths, 24, 24, [0.0, 0.0], [0, 0], [1.0, 1.0], tf.constant([1, 2], tf.int64)
            ).tokens
        ),
        jit_compile=jit_compile,
    )
    np.testing.assert_array_equal(run(tf.constant(ids), tf.constant([1, 2])).numpy(), expected)


# Every TransformerLM option that changes what a cached step computes (positions, norms,
# attention, MLPs, head), alone and all together, and GPT-2's options (the converted models').
OPTIONS = {
    "rope": dict(position="rope"),
    "sinusoidal": dict(position="sinusoidal"),
    "rmsnorm": dict(norm="rmsnorm"),
    "use_qk_norm": dict(use_qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "untied_softcap": dict(tie_embeddings=False, logit_softcap=2.0),
    "modern": dict(
        position="rope",
        norm="rmsnorm",
        use_qk_norm=True,
        mlp="relu2",
        tie_embeddings=False,
        logit_softcap=2.0,
    ),
    "gpt2": dict(use_bias=True, mlp="gelu_tanh", layer_norm_epsilon=1e-5),
}


# "modern" holds every option but swiglu; the single options repeat it (slow).
@pytest.mark.parametrize(
    "name",
    [n if n in ("modern", "swiglu", "gpt2") else pytest.param(n, marks=pytest.mark.slow) for n in OPTIONS],
)
def test_every_option_decodes_through_the_cache_phases_as_the_reference_loop(tokenizer, name):
    """The phased cache (S/8 .. S slots, then windows past the context) gives each option's
    model the tokens of the plain loop that recomputes the whole context for every token."""
    import tensorflow as tf

    from lm_keras.config import ModelConfig
    from lm_keras.generation import decode, decoder_for
    from lm_keras.models import build_model

    config = ModelConfig(
        vocab_size=tokenizer.vocab_size,
        seq_len=SEQ_LEN,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        **OPTIONS[name],
    )
    model = build_model(config)
    # Seeds whose greedy choices have no near-ties (reference_greedy checks) at this vocabulary size.
    rng = np.random.RandomState({"gpt2": 2}.get(name, 1))
    for w in model.weights:  # every weight random (zero-initialised ones too), so each one matters
        w.assign(rng.normal(0.0, 0.5, w.shape).astype("float32") + (1.0 if len(w.shape) == 1 else 0.0))
    decoder = decoder_for(model)
    newline = int(tokenizer.encode("\n")[0])
    prompts = [tokenizer.encode(p) for p in ("T", "or not")]
    new_tokens = 2 * SEQ_LEN  # through every phase and past the context
    expected = [reference_greedy(model, "transformer", p, new_tokens, SEQ_LEN, newline) for p in prompts]
    ids = np.zeros((2, 6), np.int32)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = p
    run = tf.function(
        lambda ids, lengths: (
            decode(
                decoder,
                ids,
                lengths,
                new_tokens,
                new_tokens,
                [0.0] * 2,
                [0] * 2,
                [1.0] * 2,
                tf.constant([1, 2], tf.int64),
            ).tokens
        )
    )
    np.testing.assert_array_equal(run(tf.constant(ids), tf.constant([1, 6])).numpy(), expected)
