"""The streaming signatures in this process: pieces of generate_tokens give generate_details's answer."""

import numpy as np
import pytest

from tests.generation.tiny_models import char_tokenizer, random_model

PROMPTS = ["ROMEO:", "", "First Citizen:\nBefore we proceed"]  # the last is longer than the context
SETTINGS = [(0.0, 1, None), (0.9, 7, None), (1.0, 3, ["e", "th"])]


def run_in_pieces(module, prompts, max_new_tokens, temperature, seed, stop, pieces):
    """Each row's (text, finish_reason, completion_tokens, prompt_tokens), continuing every
    unfinished row by the next size of `pieces` (the last one repeated) until all have finished."""
    import tensorflow as tf

    out = module.tokenize(tf.constant(prompts))
    lengths = out["lengths"].numpy()
    prompt_ids = np.where(
        np.arange(out["token_ids"].shape[1])[None, :] < lengths[:, None], out["token_ids"], -1
    )
    generated = [[] for _ in prompts]
    results = [None] * len(prompts)
    step = 0
    while None in results:
        rows = [i for i, r in enumerate(results) if r is None]
        width = max(len(generated[i]) for i in rows)
        ids = np.full([len(rows), width], -1, np.int32)
        for j, i in enumerate(rows):
            ids[j, : len(generated[i])] = generated[i]
        out = module.generate_tokens(
            tf.constant(prompt_ids[rows], tf.int32),
            tf.constant(ids),
            tf.constant([max_new_tokens]),
            tf.constant([pieces[min(step, len(pieces) - 1)]]),
            tf.constant([temperature]),
            tf.constant([0]),
            tf.constant([1.0]),
            tf.constant([seed + i for i in rows], tf.int64),
            tf.constant([stop or [""]]),
        )
        for j, i in enumerate(rows):
            new = out["token_ids"].numpy()[j]
            generated[i] += new[new >= 0].tolist()
            reason = out["finish_reason"].numpy()[j].decode()
            if reason:
                results[i] = (
                    out["continuation"].numpy()[j].decode(),
                    reason,
                    int(out["completion_tokens"].numpy()[j]),
                    int(out["prompt_tokens"].numpy()[j]),
                )
        step += 1
    return results


# The Transformer's pieces run through the session loader in tests/serving/test_openai_api.py.
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["transformer", "lstm", "documented_lstm"])
def test_pieces_give_generate_details_answer(kind):
    from lm_keras.generation.text_generation import generate_details
    from lm_keras.serving.generation_module import GenerationModule

    tokenizer = char_tokenizer()
    model = random_model(kind, tokenizer.vocab_size)
    module = GenerationModule(model, tokenizer, temperature=0.0, max_new_tokens=12, max_new_tokens_limit=60)
    for temperature, seed, stop in SETTINGS:
        want = generate_details(
            model,
            tokenizer,
            PROMPTS,
            max_new_tokens=40,
            temperature=temperature,
            top_k=0,
            seed=seed,
            stop=stop,
        )
        got = run_in_pieces(module, PROMPTS, 40, temperature, seed, stop, pieces=[1, 2, 4, 16])
        assert got == [(w.text, w.finish_reason, w.completion_tokens, w.prompt_tokens) for w in want], (
            temperature,
            stop,
        )


@pytest.mark.slow
def test_encode_chat_gives_the_chat_templates_ids():
    import tensorflow as tf

    from lm_keras import chat_template
    from lm_keras.serving.generation_module import GenerationModule

    tokenizer = char_tokenizer()
    module = GenerationModule(random_model("transformer", tokenizer.vocab_size), tokenizer)
    conversations = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi €"}],
        [{"role": "user", "content": ""}],
    ]
    out = module.encode_chat(
        tf.constant([["system", "user"], ["user", ""]]), tf.constant([["Be brief.", "Hi €"], ["", ""]])
    )
    for row, messages in enumerate(conversations):
        ids, _ = chat_template.encode_messages(tokenizer, messages, add_generation_prompt=True)
        length = int(out["lengths"].numpy()[row])
        assert out["token_ids"].numpy()[row, :length].tolist() == ids.tolist()
        assert (out["token_ids"].numpy()[row, length:] == -1).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown role"):
        module.encode_chat(tf.constant([["robot"]]), tf.constant([["x"]]))
