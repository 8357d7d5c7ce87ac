"""Scoring a task: greedy answers that stop at end-of-text, against references, by exact match
and token F1 with SQuAD's normalisation (the official evaluate-v1.1 script's rules)."""

import collections
import re
import string
import time

from lm_keras.progress import duration

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces.

    Example:

    >>> normalize_answer("The  Duke of York!")
    'duke of york'
    """
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, reference):
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction, reference):
    """The F1 of the normalised texts' words (a bag of words, as SQuAD counts them).

    Example:

    >>> round(token_f1("the duke of york", "York"), 3)
    0.5
    """
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)  # both empty: a match; one empty: none
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_examples(model, tokenizer, examples, *, batch_size, max_new_tokens, log=None, every_seconds=5.0):
    """Greedy answers to every example's prompt, scored against its reference.

    Each prompt is answered alone (batching does not change a row's tokens: see
    `lm_keras.generation.decode`), greedily, until the end-of-text id or
    `max_new_tokens`. A prompt longer than the model's context keeps its last tokens, and
    is counted in `prompts_cut`.

    Args:
        model: a trained model.
        tokenizer: its tokenizer (with an end-of-text id, or answers run to max_new_tokens).
        examples: list of (prompt, reference): the prompt a str, or a list of chat messages.
        batch_size: prompts generated at once.
        max_new_tokens: the longest answer generated.
        log: where progress lines go (None: nowhere).

    Returns:
        (figures, predictions): figures {exact_match, f1 (both in [0, 1]), examples,
        prompts_cut, stopped (answers that ended with end-of-text)}; predictions a list of
        {prompt, reference, output, exact_match, f1}.
    """
    from lm_keras.generation.text_generation import generate_details

    predictions, cut, stopped = [], 0, 0
    started = last = time.monotonic()
    for begin in range(0, len(examples), batch_size):
        batch = examples[begin : begin + batch_size]
        answers = generate_details(
            model, tokenizer, [prompt for prompt, _ in batch], max_new_tokens=max_new_tokens, temperature=0.0
        )
        for (prompt, reference), answer in zip(batch, answers):
            cut += answer.prompt_tokens_dropped > 0
            stopped += answer.finish_reason == "stop"
            predictions.append(
                {
                    "prompt": prompt,
                    "reference": reference,
                    "output": answer.text,
                    "exact_match": exact_match(answer.text, reference),
                    "f1": token_f1(answer.text, reference),
                }
            )
        now, done = time.monotonic(), len(predictions)
        if log and (now - last >= every_seconds or done == len(examples)):
            rate = done / max(now - started, 1e-9)
            log(
                f"score | {done:,}/{len(examples):,} examples | {rate:.1f} examples/s | "
                f"exact match {sum(p['exact_match'] for p in predictions) / done:.3f} | "
                f"eta {duration((len(examples) - done) / rate)}"
            )
            last = now
    count = max(len(predictions), 1)
    figures = {
        "exact_match": sum(p["exact_match"] for p in predictions) / count,
        "f1": sum(p["f1"] for p in predictions) / count,
        "examples": len(predictions),
        "prompts_cut": cut,
        "stopped": stopped,
    }
    return figures, predictions


def score_file(model, tokenizer, path, *, batch_size, max_new_tokens=0, log=None):
    """`score_examples` over every example of a .jsonl file (prompt/completion, or messages that end
    with the assistant's reply); `max_new_tokens` 0 is the longest reference's tokens + 8."""
    from lm_keras.data.examples import prompt_and_reference, read_examples

    examples = [prompt_and_reference(record, fmt) for record, fmt in read_examples(path)]
    longest = max(len(tokenizer.encode(reference)) for _, reference in examples)
    limit = max_new_tokens or longest + 8
    return score_examples(model, tokenizer, examples, batch_size=batch_size, max_new_tokens=limit, log=log)
