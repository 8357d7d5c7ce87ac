"""`generate`: text in, text out, for a batch of prompts, in this process."""

import dataclasses
import random
import weakref

import numpy as np
import tensorflow as tf

from lm_keras import chat_template, generation_settings
from lm_keras.errors import UserError
from lm_keras.generation.decode_loop import bucket, decode
from lm_keras.generation.factory import decoder_for
from lm_keras.generation.stop_strings import StopStrings

# What an empty prompt stands for: the start of a text, as in nanoGPT's sample.py.
EMPTY_PROMPT = "\n"

# `generate` compiles with XLA from this many new tokens on (see default_jit_compile).
JIT_MIN_NEW_TOKENS = 1000
# model -> {(use_cache, jit_compile, pad id, unknown id, eot id, in-graph tokenizer or None): tf.function};
# a model's functions die with it.
_COMPILED = weakref.WeakKeyDictionary()
# tokenizer -> its in-graph module (for stop strings).
_IN_GRAPH = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class EncodedPrompts:
    """Prompts as the model will see them.

    Attributes:
        ids: list of int32 arrays, each prompt's ids, cut to the model's context.
        dropped: list of int, how many leading tokens each prompt lost to the cut.
        context: the model's context in tokens, or None for no limit.
    """

    ids: list
    dropped: list
    context: object


def encode_prompts(tokenizer, prompts, context):
    """Encodes prompts as `generate` does.

    An empty prompt becomes a newline (the start of a text). A prompt longer than
    `context` tokens keeps its last `context` tokens, like nanoGPT's
    `idx[:, -block_size:]`. Characters the vocabulary lacks are encoded as the
    tokenizer promises (the char tokenizer's unknown id; SentencePiece's bytes). A
    conversation (a list of `{"role", "content"}` messages) is encoded by the chat
    template, ending with the assistant's header (`chat_template.encode_messages`).

    Args:
        tokenizer: a `lm_keras.tokenizers.Tokenizer`.
        prompts: list of str, or of conversations.
        context: int, or None for no limit.

    Returns:
        An `EncodedPrompts`.
    """
    if isinstance(prompts, str) or not all(isinstance(p, (str, list)) for p in prompts):
        raise UserError("prompts must be a list of str or of conversations (wrap a single prompt in a list)")
    ids, dropped = [], []
    for prompt in prompts:
        if isinstance(prompt, list):
            row, _ = chat_template.encode_messages(tokenizer, prompt, add_generation_prompt=True)
        else:
            row = tokenizer.encode(prompt or EMPTY_PROMPT)
        row = np.asarray(row, np.int32)
        cut = max(0, len(row) - context) if context else 0
        ids.append(row[cut:])
        dropped.append(cut)
    return EncodedPrompts(ids, dropped, context)


def default_jit_compile(max_new_tokens):
    """Whether `generate` compiles the decoding loop with XLA by default.

    XLA's loop is faster per token for every family (measured on 2 CPU cores,
    batch 1, greedy, warm): Transformer (4 layers, 128 wide, context 1024) with
    the cache 828 vs 262 new tokens/s, without it 15.6 vs 8.5; LSTMLM (2 x 256)
    16,300 vs 10,700; documented LSTM (window 40) 560 vs 113. But compiling
    costs 2-4 s per new batch and prompt shape where tracing the plain graph
    costs 0.5-1.5 s, so XLA pays only for long generations (or when the same
    shapes run again: compiled loops are kept per model). The default uses XLA
    from `JIT_MIN_NEW_TOKENS` new tokens on.
    """
    return max_new_tokens >= JIT_MIN_NEW_TOKENS


@dataclasses.dataclass(frozen=True)
class Completion:
    """One prompt's answer from `generate_details`.

    Attributes:
        text: the continuation, without the end-of-text id or stop string that ended
            it (and nothing after the stop string).
        finish_reason: "stop" (the row wrote the end-of-text id or a stop string) or
            "length" (it ran to `max_new_tokens`), as OpenAI's API names them.
        completion_tokens: the tokens generated, up to and including the one that
            stopped the row (an end-of-text id counts).
        prompt_tokens: the prompt's tokens the model saw.
        prompt_tokens_dropped: the prompt's leading tokens cut to fit the context.
    """

    text: str
    finish_reason: str
    completion_tokens: int
    prompt_tokens: int
    prompt_tokens_dropped: int


def generate(
    model,
    tokenizer,
    prompts,
    max_new_tokens=generation_settings.MAX_NEW_TOKENS,
    temperature=generation_settings.TEMPERATURE,
    top_k=generation_settings.TOP_K,
    top_p=generation_settings.TOP_P,
    seed=None,
    use_cache=True,
    jit_compile=None,
    stop=None,
):
    """Continues each prompt with up to `max_new_tokens` generated tokens.

    The whole decoding loop is one compiled graph (`decode`): the Transformer
    decodes with its key/value cache, the LSTM carries its states, and the
    documented LSTM reads one window per token. Prompts may have different
    lengths; each row's continuation equals what the prompt gives alone. The
    tokenizer's unknown id (the char tokenizer's U+FFFD) is never generated: it is
    no character (see `decode`'s `unknown_id`).

    A row stops at the tokenizer's end-of-text id (`tokenizer.eot_id`; a tokenizer
    without one stops only at stop strings and `max_new_tokens`) and at the first
    occurrence of any `stop` string; its text ends before them. The loop ends when
    every row has stopped. Stop strings are searched in the graph with string ops,
    which XLA cannot compile, so with `stop` the loop runs as a plain graph
    whatever `jit_compile` says.

    Args:
        model: a `TransformerLM`, `LSTMLM` or documented LSTM.
        tokenizer: the model's `lm_keras.tokenizers.Tokenizer`.
        prompts: list of str; an empty prompt starts from a newline, and a prompt
            longer than the model's context keeps its last tokens (see
            `encode_prompts` for how many were dropped).
        max_new_tokens: int >= 0, the most tokens to generate after each prompt.
        temperature: float >= 0; 0 is greedy (argmax).
        top_k: int >= 0, sample among the k most likely tokens (0: all).
        top_p: float in (0, 1], sample among the most likely tokens whose
            probabilities add up to top_p (1.0: all).
        seed: int or None. Prompt i samples with seed + i, so a seeded call is
            reproducible and equal prompts in one call give different samples.
            None draws a seed at random.
        use_cache: carry the key/value cache or LSTM state (True), or recompute the
            whole context at every step (False); greedy output is the same.
        jit_compile: compile the loop with XLA; None uses XLA for long
            generations, where its faster steps repay the compile time
            (`default_jit_compile`). Ignored with `stop` (see above).
        stop: None, a str or a list of str (non-empty, at most
            `generation_settings.MAX_STOP_STRINGS`, each at most
            `generation_settings.MAX_STOP_BYTES` bytes): every row stops at the first
            of them.

    Returns:
        list of str, the continuations (without the prompts).

    Example:

    >>> trained = load_trained("runs/shakespeare")
    >>> generate(trained.model, trained.tokenizer, ["ROMEO:", ""], max_new_tokens=50,
    ...          temperature=0.0, stop=["\n\n"])
    ['\nWhat shall I ...', 'The ...']
    """
    completions = generate_details(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        use_cache=use_cache,
        jit_compile=jit_compile,
        stop=stop,
    )
    return [completion.text for completion in completions]


def generate_details(
    model,
    tokenizer,
    prompts,
    max_new_tokens=generation_settings.MAX_NEW_TOKENS,
    temperature=generation_settings.TEMPERATURE,
    top_k=generation_settings.TOP_K,
    top_p=generation_settings.TOP_P,
    seed=None,
    use_cache=True,
    jit_compile=None,
    stop=None,
):
    """`generate`, with what a server reports about each answer.

    Takes the arguments of `generate`.

    Returns:
        list of `Completion`, one per prompt: its text, finish reason ("stop" or
        "length"), completion and prompt token counts.

    Example:

    >>> generate_details(model, tokenizer, ["Q: 2+2?\nA:"], temperature=0.0, stop=["\n"])
    [Completion(text=' 4', finish_reason='stop', completion_tokens=3, prompt_tokens=10, ...)]
    """
    problem = generation_settings.settings_problem(
        max_new_tokens, temperature, top_k, top_p, seed
    ) or generation_settings.stop_problem(stop)
    if problem:
        raise UserError(problem)
    stops = generation_settings.stop_list(stop)
    pad_id = _newline_id(tokenizer)
    unknown_id = unknown_id_of(tokenizer)
    eot_id = eot_id_of(tokenizer)
    decoder = decoder_for(model, pad_id=pad_id)
    encoded = encode_prompts(tokenizer, prompts, decoder.context)
    if not prompts or max_new_tokens == 0:
        return [
            Completion("", "length", 0, len(ids), dropped)
            for ids, dropped in zip(encoded.ids, encoded.dropped)
        ]
    batch = len(prompts)
    lengths = np.array([len(row) for row in encoded.ids], np.int32)
    width = bucket(int(lengths.max()))
    if decoder.context:
        width = min(width, decoder.context)
    prompt_ids = np.zeros((batch, width), np.int32)
    for i, row in enumerate(encoded.ids):
        prompt_ids[i, : len(row)] = row
    if seed is None:
        seed = random.SystemRandom().randrange(generation_settings.RANDOM_SEED_LIMIT)
    seeds = np.arange(seed, seed + batch, dtype=np.int64)
    if stops:
        jit = False  # string ops: see StopStrings
    else:
        jit = default_jit_compile(max_new_tokens) if jit_compile is None else bool(jit_compile)
    graph_tokenizer = _in_graph(tokenizer) if stops else None
    fn = _compiled(model, graph_tokenizer, pad_id, unknown_id, eot_id, use_cache, jit)
    arguments = [
        tf.constant(prompt_ids),
        tf.constant(lengths),
        tf.constant(max_new_tokens, tf.int32),
        bucket(max_new_tokens),
        tf.fill([batch], float(temperature)),
        tf.fill([batch], int(top_k)),
        tf.fill([batch], float(top_p)),
        tf.constant(seeds),
    ]
    if stops:
        arguments.append(tf.constant([stops] * batch, tf.string))  # (B, S)
    decoded = fn(*arguments)
    new_tokens = decoded.tokens.numpy()
    completions = []
    for i, row in enumerate(new_tokens):
        text = tokenizer.decode(row[row >= 0])
        # The first stop string is the first in the text: one earlier would have stopped the row.
        cut = min((at for at in (text.find(s) for s in stops) if at >= 0), default=len(text))
        stopped = bool(decoded.stopped[i])
        completions.append(
            Completion(
                text=text[:cut],
                finish_reason="stop" if stopped else "length",
                completion_tokens=int(decoded.completion_tokens[i]),
                prompt_tokens=int(lengths[i]),
                prompt_tokens_dropped=encoded.dropped[i],
            )
        )
    return completions


def _compiled(model, graph_tokenizer, pad_id, unknown_id, eot_id, use_cache, jit):
    """The traced loop of a model, kept while the model lives (so a trainer's or a
    benchmark's repeated calls trace and compile once per shape). With a
    `graph_tokenizer` (an in-graph tokenizer), the loop takes the stop strings `(B, S)`
    as a last argument and checks them with its detokenizer."""
    functions = _COMPILED.setdefault(model, {})
    key = (use_cache, jit, pad_id, unknown_id, eot_id, graph_tokenizer)
    if key not in functions:
        # A weak reference: the cache must not keep its own key (the model) alive.
        model_ref = weakref.ref(model)
        detokenize = None if graph_tokenizer is None else graph_tokenizer.detokenize

        def run(prompt_ids, lengths, max_new_tokens, new_width, temperature, top_k, top_p, seeds, stops=None):
            decoder = decoder_for(model_ref(), pad_id=pad_id)
            return decode(
                decoder,
                prompt_ids,
                lengths,
                max_new_tokens,
                new_width,
                temperature,
                top_k,
                top_p,
                seeds,
                use_cache=use_cache,
                unknown_id=unknown_id,
                eot_id=eot_id,
                stop_check=None if stops is None else StopStrings(detokenize, stops).check,
            )

        # new_width is a Python int, part of the trace: the buffer's static shape.
        functions[key] = tf.function(run, jit_compile=jit, reduce_retracing=False)
    return functions[key]


def _in_graph(tokenizer):
    """The tokenizer's in-graph module, built once per tokenizer (GPT-2's builds tables)."""
    if tokenizer not in _IN_GRAPH:
        _IN_GRAPH[tokenizer] = tokenizer.in_graph()
    return _IN_GRAPH[tokenizer]


def _newline_id(tokenizer):
    return int(tokenizer.encode(EMPTY_PROMPT)[-1])


def unknown_id_of(tokenizer):
    """The id a tokenizer gives every character outside its vocabulary, or None.

    The char tokenizer has one (0, decoding to U+FFFD) and models trained with it
    predict it. SentencePiece's byte fallback encodes such characters as bytes, so
    its unknown id never occurs in training and models give it no weight; GPT-2's
    byte-level BPE has none.
    """
    unknown_id = getattr(tokenizer, "unknown_id", None)
    return None if unknown_id is None else int(unknown_id)


def eot_id_of(tokenizer):
    """The tokenizer's end-of-text id, or None (a tokenizer saved before lm_keras had one)."""
    eot_id = getattr(tokenizer, "eot_id", None)
    return None if eot_id is None else int(eot_id)
