"""Generation stops: at the end-of-text id and at stop strings, in the loop and in `generate`."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.generation.tiny_models import char_tokenizer, random_model

NEW_TOKENS = 12
# Sampled (random models' greedy text repeats a token or two), reproducibly: a seed per row.
SAMPLED = dict(temperature=[1.0] * 3, top_k=[0] * 3, top_p=[1.0] * 3, seeds=tf.constant([5, 6, 7], tf.int64))


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


class CountingDecoder:
    """A decoder that counts its steps (one model call each) in a variable, at run time."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.steps = tf.Variable(0)

    def __getattr__(self, name):
        return getattr(self.decoder, name)

    def phases(self, *args):
        return [dataclasses.replace(p, step=self._counted(p.step)) for p in self.decoder.phases(*args)]

    def _counted(self, step):
        def counted(tokens, position, state):
            with tf.control_dependencies([self.steps.assign_add(1)]):
                return step(tokens, position, state)

        return counted


def run_decode(decoder, prompts, tokenizer, jit_compile=False, **options):
    """decode on the encoded prompts (SAMPLED settings); returns its fields as numpy arrays."""
    from lm_keras.generation import decode

    ids = [tokenizer.encode(p) for p in prompts]
    padded = np.zeros((len(ids), max(map(len, ids))), np.int32)
    for i, row in enumerate(ids):
        padded[i, : len(row)] = row
    settings = {k: v[: len(ids)] for k, v in SAMPLED.items()}
    run = lambda p, n: decode(decoder, p, n, NEW_TOKENS, NEW_TOKENS, **settings, **options)  # noqa: E731
    if jit_compile:
        run = tf.function(run, jit_compile=True)  # else eager: 12 steps cost less than tracing
    out = run(tf.constant(padded), tf.constant([len(r) for r in ids]))
    return out.tokens.numpy(), out.completion_tokens.numpy(), out.stopped.numpy()


def first_new_token(row, start):
    """(offset, id): the first token of `row` from `start` on that did not occur before it."""
    for k in range(start, len(row)):
        if row[k] not in row[:k]:
            return k, int(row[k])
    raise AssertionError(f"no new token in {row}: pick another seed")


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_a_row_stops_at_the_end_of_text_id_and_an_early_stop_saves_the_steps(kind, tokenizer):
    from lm_keras.generation import decoder_for

    model = random_model(kind, tokenizer.vocab_size, seed=1)
    prompts = ["ROMEO:", "O"]
    counting = CountingDecoder(decoder_for(model))
    free, free_count, free_stopped = run_decode(counting, prompts, tokenizer)
    full_steps = int(counting.steps.numpy())
    assert (free >= 0).all() and free_count.tolist() == [NEW_TOKENS] * 2 and not free_stopped.any()
    # The end-of-text id of this test: a token row 0 first writes at offset k (as if the model ended
    # its text there), and that row 1 never writes.
    k, eot = first_new_token(free[0].tolist(), 2)
    assert eot not in free[1], "pick another seed"
    tokens, count, stopped = run_decode(counting, prompts, tokenizer, eot_id=eot)
    np.testing.assert_array_equal(tokens[0], np.where(np.arange(NEW_TOKENS) < k, free[0], -1))
    np.testing.assert_array_equal(tokens[1], free[1])  # the other row is unchanged
    assert count.tolist() == [k + 1, NEW_TOKENS] and stopped.tolist() == [True, False]
    # Alone, the row's early stop ends the loop: the steps (model calls) after the one that follows
    # the end-of-text id are not run.
    counting.steps.assign(0)
    run_decode(counting, prompts[:1], tokenizer)
    alone_steps = int(counting.steps.numpy())
    assert alone_steps <= full_steps
    counting.steps.assign(0)
    alone, _, _ = run_decode(counting, prompts[:1], tokenizer, eot_id=eot)
    assert alone_steps - int(counting.steps.numpy()) == NEW_TOKENS - 2 - k
    np.testing.assert_array_equal(alone[0], tokens[0])
    if kind != "lstm":
        return  # compiling the Transformer's loop takes most of a minute; the check is the same
    # XLA compiles the end-of-text check into its loop, to the same tokens.
    xla, xla_count, xla_stopped = run_decode(
        decoder_for(model), prompts, tokenizer, jit_compile=True, eot_id=eot
    )
    np.testing.assert_array_equal(xla, tokens)
    assert xla_count.tolist() == count.tolist() and xla_stopped.tolist() == stopped.tolist()


def test_per_row_stop_strings_stop_their_rows_only(tokenizer):
    from lm_keras.generation import StopStrings, decoder_for

    model = random_model("lstm", tokenizer.vocab_size, seed=1)
    prompts = ["ROMEO:", "O", "JULIET:"]
    decoder = decoder_for(model)
    free, _, _ = run_decode(decoder, prompts, tokenizer)
    texts = [tokenizer.decode(row) for row in free]
    # Row 0 stops at two characters of its own text (the second completes it at offset 4); row 1
    # has a stop string its text never holds; row 2 none ("" is ignored).
    stop_0 = texts[0][3:5]
    assert stop_0 not in texts[0][:4], "pick another seed"
    stops = tf.constant([[stop_0, ""], ["\u00a7\u00a7", ""], ["", ""]])
    detokenize = tokenizer.in_graph().detokenize
    tokens, count, stopped = run_decode(
        decoder, prompts, tokenizer, stop_check=StopStrings(detokenize, stops).check
    )
    np.testing.assert_array_equal(tokens[0], np.where(np.arange(NEW_TOKENS) < 5, free[0], -1))
    np.testing.assert_array_equal(tokens[1:], free[1:])
    assert count.tolist() == [5, NEW_TOKENS, NEW_TOKENS] and stopped.tolist() == [True, False, False]
    # StopStrings.find: where in the text the stop string starts.
    text, offset = StopStrings(detokenize, stops[:1]).find(
        tf.constant(np.maximum(tokens[:1], 0)), tf.constant([0]), tf.constant([5])
    )
    assert text.numpy()[0].decode() == texts[0][:5] and offset.numpy().tolist() == [3]


def test_text_in_pieces_equals_text_at_once(tokenizer):
    """Sampling is a pure function of (seed, position): continuing a prompt and its first k new
    tokens gives the tokens one call gives (what streaming relies on)."""
    from lm_keras.generation import decode, decoder_for

    model = random_model("transformer", tokenizer.vocab_size, seed=2)
    decoder = decoder_for(model)
    prompt = tokenizer.encode("ROMEO:")
    settings = dict(temperature=[1.0], top_k=[0], top_p=[1.0], seeds=tf.constant([3], tf.int64))

    def sample(ids, n):
        return decode(decoder, tf.constant([ids]), tf.constant([len(ids)]), n, n, **settings).tokens.numpy()[
            0
        ]

    at_once = sample(prompt, 9)
    pieces = []
    for _ in range(3):
        pieces += sample(np.concatenate([prompt, pieces]).astype(np.int32), 3).tolist()
    assert pieces == at_once.tolist()


def test_generate_stops_at_stop_strings_and_reports_why(tokenizer):
    from lm_keras.generation import Completion, generate, generate_details

    model = random_model("lstm", tokenizer.vocab_size, seed=1)
    prompts = ["ROMEO:", "O"]
    free = generate_details(model, tokenizer, prompts, max_new_tokens=NEW_TOKENS, temperature=1.0, seed=5)
    if free[0].finish_reason == "stop":
        pytest.skip("the model ends its text early: pick another seed")
    assert [c.finish_reason for c in free] == ["length", "length"]
    assert [c.completion_tokens for c in free] == [NEW_TOKENS] * 2
    assert [c.prompt_tokens for c in free] == [6, 1]
    text = free[0].text
    # Two characters of row 0's text, first complete at offset i + 1, that row 1 never writes.
    i = next(i for i in range(1, 9) if text[i : i + 2] not in text[: i + 1] + "|" + free[1].text)
    stop = text[i : i + 2]
    stopped = generate_details(
        model, tokenizer, prompts, max_new_tokens=NEW_TOKENS, temperature=1.0, seed=5, stop=[stop, "\u00a7"]
    )
    assert stopped[0] == Completion(text[:i], "stop", i + 2, 6, 0)
    assert stopped[1] == free[1]
    # generate gives the texts alone.
    assert generate(
        model, tokenizer, prompts, max_new_tokens=NEW_TOKENS, temperature=1.0, seed=5, stop=[stop, "\u00a7"]
    ) == [
        text[:i],
        free[1].text,
    ]


def test_generate_stops_at_the_tokenizers_end_of_text(tokenizer):
    from lm_keras.generation import generate_details

    if getattr(tokenizer, "eot_id", None) is None:
        pytest.skip("this tokenizer has no end-of-text id")
    model = random_model("lstm", tokenizer.vocab_size)
    bias = model.output_projection.bias
    bias.assign(bias.numpy() + 50.0 * (np.arange(tokenizer.vocab_size) == tokenizer.eot_id))
    out = generate_details(model, tokenizer, ["ROMEO:", ""], max_new_tokens=8, temperature=0.0)
    assert [(c.text, c.finish_reason, c.completion_tokens) for c in out] == [("", "stop", 1)] * 2


@pytest.mark.parametrize(
    "stop,message",
    [
        ([""], "stop strings must not be empty"),
        (["a", 3], "stop must be a str or a list of str"),
        (["x"] * 17, "stop takes at most 16 strings"),
        (["x" * 257], "at most 256 bytes"),
    ],
)
def test_bad_stop_strings_are_user_errors(tokenizer, stop, message):
    from lm_keras.errors import UserError
    from lm_keras.generation import generate

    model = random_model("lstm", tokenizer.vocab_size)
    with pytest.raises(UserError, match=message):
        generate(model, tokenizer, ["ROMEO:"], max_new_tokens=2, stop=stop)
