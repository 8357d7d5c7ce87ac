"""The exported model: tokenizer, decoding loop and detokenizer in one TF graph."""

import contextlib
import functools

import tensorflow as tf
from keras.src.backend.tensorflow import core as keras_tensorflow_core

from lm_keras import generation_settings
from lm_keras.generation.decode_loop import Decoded, bucket, decode
from lm_keras.generation.factory import decoder_for
from lm_keras.generation.stop_strings import StopStrings
from lm_keras.generation.text_generation import EMPTY_PROMPT, eot_id_of, unknown_id_of
from lm_keras.serving import token_signatures

# Token-id tensors are right-padded with this where rows differ in length.
PAD_ID = -1
# Keras's own lowering of `ops.slice_update` (XLA's dynamic-update-slice), for XLA functions.
_KERAS_SLICE_UPDATE = keras_tensorflow_core.dynamic_update_slice


class GenerationModule(tf.Module):
    """A language model and its tokenizer as a servable `tf.Module`.

    Its signatures (what `tf.saved_model.save` writes and TF Serving serves):

    - `serving_default(prompt)`: tf.string `(B,)` in; out `continuation` tf.string
      `(B,)`, the text generated after each prompt with the export's settings (its
      stop strings included); `finish_reason` tf.string `(B,)`, "stop" where the row
      stopped at the end-of-text id or a stop string, "length" where it ran to
      `max_new_tokens`; `completion_tokens` int32 `(B,)`, the tokens generated (up to
      and including the one that stopped the row); and `prompt_tokens_dropped` int32
      `(B,)`, how many leading prompt tokens did not fit the model's context (0 for
      most prompts). Only `prompt`, so the REST call
      `{"instances": [{"prompt": "ROMEO:"}]}` (or `{"instances": ["ROMEO:"]}`) is a
      complete request for any TF Serving version.
    - `generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, stop)`: the
      same with every setting per prompt, each `(B,)` (or `(1,)`, which applies to
      every prompt), and `stop` tf.string `(B, S)` (or `(1, S)`): row b's stop
      strings, "" entries ignored, so rows with fewer pad with "" (`S` may be 0). The
      SignatureDef records the export's settings as defaults (`seed` -1, a random
      seed, unless the export fixed one; `stop` the export's `(1, S)`), which TF
      Serving's gRPC Predict applies to inputs a request leaves out
      (predict_util.cc). Its REST JSON parser (json_tensor.cc) asks every instance
      for every input of the signature, so over REST give all seven (`"stop": []`
      for none).
    - `next_token_logits(token_ids)`: int32 `(B, T)` in; `logits` float32 `(B, V)`,
      the logits of the token after each row (the documented LSTM gives
      log-probabilities). A model with a context reads the last `context` tokens
      of each row, whatever its length; the LSTMLM reads every token, so its rows
      are limited to `max_prompt_bytes` tokens (as many as a prompt has bytes at
      most, for the char and byte-level tokenizers).
    - `tokenize(text)`: tf.string `(B,)` in; `token_ids` int32 `(B, N)` padded
      with -1, and `lengths` int32 `(B,)`.
    - `detokenize(token_ids)`: int32 `(B, N)` in (-1 entries are skipped); `text`
      tf.string `(B,)`.
    - `generate_tokens(prompt_ids, generated_ids, max_new_tokens, piece_tokens,
      temperature, top_k, top_p, seed, stop)`: the next piece of up to `piece_tokens`
      tokens after a prompt's ids and the ids generated so far, what streaming runs
      (see `token_signatures.generate_tokens`); pieces give the tokens of one call.
    - `encode_chat(roles, contents)`: tf.string `(B, M)` each in; `token_ids` int32
      `(B, N)` padded with -1 and `lengths`: the chat template's ids of each
      conversation, ready for the assistant's answer (only for a tokenizer with an
      end-of-text id).

    The generated text never holds the tokenizer's unknown id (see `decode`). Every
    row stops at the tokenizer's end-of-text id (when it has one) and at its first
    stop string; its text ends before them (`lm_keras.generation.generate` does the
    same in-process), and the loop ends when every row has stopped.

    Inputs are checked in the graph, so TF Serving enforces the checks too: text
    that is not valid UTF-8, more than `max_prompts_per_request` rows, a prompt over
    `max_prompt_bytes` bytes, `max_new_tokens` outside `[1, max_new_tokens_limit]`
    more than `MAX_STOP_STRINGS` stop strings or one over `MAX_STOP_BYTES` bytes, and
    settings out of range raise `InvalidArgumentError` with a message naming the
    limit.

    The decoding loop is `lm_keras.generation.decode` (the same function
    `generate` runs in-process, with the key/value cache or LSTM state). With
    `jit_compile=False` it is traced as a plain graph, which runs on every TF
    build and server. TF Serving compiles no XLA unless started with
    `--xla_cpu_compilation_enabled=true` (without it, its `main` calls
    `tensorflow::DisableXlaCompilation()`, and any XLA function fails on its
    first request, on every device). With `jit_compile=True` the loop is an XLA
    function (`_XlaMustCompile`), for servers that compile XLA: TF Serving with
    that flag, `tf.saved_model.load`, and this repository's session loader and
    server. XLA compiles one program per input shape, so the loop's inputs are
    padded to buckets first (the batch, the prompts' width and the room for new
    tokens each to a power of two, `decode_loop.bucket`, as `generate` pads them;
    see `_decode_compiled`): a server compiles
    a few programs, once each, not one per request. Stop strings are searched with
    string ops, which XLA cannot compile: a request with stop strings (or
    `serving_default` of an export with some) runs the plain graph's loop, and
    only the end-of-text id stops the XLA loop. Either way, save it under
    `stock_ops_only()` (as `export_saved_model` does): that keeps Keras's
    XLA-only `XlaDynamicUpdateSlice` (its TensorFlow `slice_update`, which the
    attention's cache write uses) out of the graph.

    Args:
        model: a `TransformerLM`, `LSTMLM` or documented LSTM.
        tokenizer: its `lm_keras.tokenizers.Tokenizer`.
        max_new_tokens, temperature, top_k, top_p: the settings of `serving_default`
            and the defaults of `generate`.
        seed: int in [0, 2**62) or None, the seed of `serving_default` and the default
            of `generate`. Every prompt samples with it, alone or batched with others, so
            a prompt's answer is the same at every request and equals
            `generate([prompt], seed=seed)`; None draws a seed for each prompt.
        max_prompt_bytes: the longest prompt accepted, in UTF-8 bytes.
        max_new_tokens_limit: the most tokens one request may ask for.
        max_prompts_per_request: the most prompts in one request (larger requests are
            refused; batching requests together is the server's business).
        stop: None, a str or a list of str: the stop strings of `serving_default` and
            the default of `generate`'s `stop` (see `generation_settings.stop_problem`).
        jit_compile: bool, whether the decoding loop is an XLA function (see above).

    Example:

    >>> module = GenerationModule(trained.model, trained.tokenizer, temperature=0.0)
    >>> module.serving_default(tf.constant(["ROMEO:"]))["continuation"]
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'...'], dtype=object)>
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens=generation_settings.MAX_NEW_TOKENS,
        temperature=generation_settings.TEMPERATURE,
        top_k=generation_settings.TOP_K,
        top_p=generation_settings.TOP_P,
        seed=None,
        max_prompt_bytes=generation_settings.MAX_PROMPT_BYTES,
        max_new_tokens_limit=generation_settings.MAX_NEW_TOKENS_LIMIT,
        max_prompts_per_request=generation_settings.MAX_PROMPTS_PER_REQUEST,
        jit_compile=False,
        stop=None,
        name="lm_keras_generation",
    ):
        super().__init__(name=name)
        problem = (
            generation_settings.export_limits_problem(
                max_prompt_bytes, max_new_tokens_limit, max_prompts_per_request
            )
            or generation_settings.settings_problem(
                max_new_tokens,
                temperature,
                top_k,
                top_p,
                seed,
                min_new_tokens=1,
                max_new_tokens_limit=max_new_tokens_limit,
            )
            or generation_settings.stop_problem(stop)
        )
        if problem:
            raise ValueError(problem)
        # The module tracks the model's `tf.Variable`s themselves, not the model. A Keras 3
        # variable is a wrapper, and saving it writes a second variable initialised from
        # the first: the SavedModel's saver restores the wrappers' copies while the
        # functions read the originals, so a session loader (TF Serving, saved_model_cli,
        # the C API) fails with "Could not find variable". With the originals tracked,
        # each weight is one variable that the saver restores and the functions read.
        self.model_variables = [v.value for v in model.variables]
        self.tokenizer = tokenizer.in_graph()
        self.vocab_size = int(tokenizer.vocab_size)
        self.max_prompt_bytes = max_prompt_bytes
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_prompts_per_request = max_prompts_per_request
        self.unknown_id = unknown_id_of(tokenizer)
        self.eot_id = eot_id_of(tokenizer)
        self.jit_compile = bool(jit_compile)
        self.settings = dict(
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_k=int(top_k),
            top_p=float(top_p),
            seed=generation_settings.RANDOM_SEED if seed is None else int(seed),
            stop=generation_settings.stop_list(stop),
        )
        # A plain attribute list, so tf.Module tracks neither the decoder nor the model it
        # holds (see model_variables).
        self._decoder = [decoder_for(model, pad_id=int(tokenizer.encode(EMPTY_PROMPT)[-1]))]
        self._xla_decode = tf.function(self._decode_buckets, jit_compile=True)
        self.serving_default = tf.function(
            self._serving_default, input_signature=[tf.TensorSpec([None], tf.string, name="prompt")]
        )
        self.generate = tf.function(
            self._make_generate(),
            input_signature=[
                tf.TensorSpec([None], tf.string, name="prompt"),
                tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
                tf.TensorSpec([None], tf.float32, name="temperature"),
                tf.TensorSpec([None], tf.int32, name="top_k"),
                tf.TensorSpec([None], tf.float32, name="top_p"),
                tf.TensorSpec([None], tf.int64, name="seed"),
                tf.TensorSpec([None, None], tf.string, name="stop"),
            ],
        )
        self.next_token_logits = tf.function(
            self._next_token_logits, input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")]
        )
        self.tokenize = tf.function(
            self._tokenize, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
        )
        self.detokenize = tf.function(
            self._detokenize, input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")]
        )
        self.generate_tokens = tf.function(
            functools.partial(token_signatures.generate_tokens, self),
            input_signature=token_signatures.generate_tokens_specs(),
        )
        self.encode_chat = (
            tf.function(
                functools.partial(token_signatures.encode_chat, self),
                input_signature=token_signatures.encode_chat_specs(),
            )
            if eot_id_of(tokenizer) is not None
            else None
        )

    @property
    def decoder(self):
        return self._decoder[0]

    def signatures(self):
        """The signature name -> tf.function map to pass to `tf.saved_model.save`."""
        return {
            "serving_default": self.serving_default,
            "generate": self.generate,
            "next_token_logits": self.next_token_logits,
            "tokenize": self.tokenize,
            "detokenize": self.detokenize,
            "generate_tokens": self.generate_tokens,
            **({"encode_chat": self.encode_chat} if self.encode_chat is not None else {}),
        }

    # ------------------------------------------------------------- signatures

    def _serving_default(self, prompt):
        s = self.settings
        return self._generate(
            prompt,
            [s["max_new_tokens"]],
            [s["temperature"]],
            [s["top_k"]],
            [s["top_p"]],
            tf.constant([s["seed"]], tf.int64),
            _stop_row(s["stop"]),
            has_stops=bool(s["stop"]),
        )

    def _make_generate(self):
        s = self.settings

        # Tensor defaults of keyword arguments become the SignatureDef's `defaults`.
        def generate(  # noqa: B008 (the defaults are made once, on purpose)
            prompt,
            max_new_tokens=tf.constant([s["max_new_tokens"]], tf.int32),  # noqa: B008
            temperature=tf.constant([s["temperature"]], tf.float32),  # noqa: B008
            top_k=tf.constant([s["top_k"]], tf.int32),  # noqa: B008
            top_p=tf.constant([s["top_p"]], tf.float32),  # noqa: B008
            seed=tf.constant([s["seed"]], tf.int64),  # noqa: B008
            stop=_stop_row(s["stop"]),  # noqa: B008
        ):
            return self._generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, stop)

        return generate

    def _next_token_logits(self, token_ids):
        checks = [
            _check(tf.size(token_ids) > 0, "token_ids must hold at least one token per row"),
            self._rows_check(tf.shape(token_ids)[0], "token_ids"),
        ]
        if self.decoder.context:
            # The model reads the last `context` tokens of a row: cut before the checks, so a
            # row's length costs nothing.
            token_ids = token_ids[:, -self.decoder.context :]  # (B, min(T, context))
        else:
            checks.append(
                _check(
                    tf.shape(token_ids)[1] <= self.max_prompt_bytes,
                    f"token_ids rows must be at most {self.max_prompt_bytes} tokens long for this "
                    "model, which reads every token (the export's max_prompt_bytes, as tokens)",
                )
            )
        checks += [
            _check(
                tf.reduce_all((token_ids >= 0) & (token_ids < self.vocab_size)),
                f"token_ids must be in [0, {self.vocab_size}), the vocabulary of the model",
            ),
        ]
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        return {"logits": tf.cast(self.decoder.next_token_logits(token_ids), tf.float32)}

    def _tokenize(self, text):
        with tf.control_dependencies(self._text_checks(text, "text")):
            ids = self.tokenizer.tokenize(text)  # (B, None)
        return {
            "token_ids": ids.to_tensor(default_value=PAD_ID),
            "lengths": tf.cast(ids.row_lengths(), tf.int32),
        }

    def _detokenize(self, token_ids):
        checks = [
            self._rows_check(tf.shape(token_ids)[0], "token_ids"),
            _check(
                tf.reduce_all((token_ids >= PAD_ID) & (token_ids < self.vocab_size)),
                f"token_ids must be in [0, {self.vocab_size}), or {PAD_ID} for padding",
            ),
        ]
        with tf.control_dependencies(checks):
            ids = tf.ragged.boolean_mask(token_ids, token_ids >= 0)  # (B, None)
        return {"text": _valid_utf8(self.tokenizer.detokenize(ids))}

    # ---------------------------------------------------------------- helpers

    def _rows_check(self, rows, name):
        return _check(
            rows <= self.max_prompts_per_request,
            f"{name}: at most {self.max_prompts_per_request} rows per request "
            "(max_prompts_per_request of this export); split the request",
        )

    def _text_checks(self, text, name):
        return [
            _check(tf.size(text) > 0, f"{name}: send at least one string"),
            self._rows_check(tf.size(text), name),
            _check(
                tf.reduce_all(tf.strings.length(text) <= self.max_prompt_bytes),
                f"{name} is longer than the limit of {self.max_prompt_bytes} bytes (UTF-8); shorten it",
            ),
            _check(tf.reduce_all(_valid_utf8(text) == text), f"{name} is not valid UTF-8; send UTF-8 text"),
        ]

    def _generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed, stop, has_stops=None):
        """The generating signatures' graph; `has_stops` is a Python bool where the stop strings are
        known when tracing (serving_default's), None where they come with the request."""
        batch = tf.size(prompt)
        settings = dict(
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
        )
        settings = {k: tf.convert_to_tensor(v) for k, v in settings.items()}
        checks = self._text_checks(prompt, "prompt")
        for name, value in settings.items():
            size = tf.size(value)
            checks.append(
                _check((size == 1) | (size == batch), f"{name} must hold one value, or one per prompt")
            )
        stop = tf.convert_to_tensor(stop, tf.string)
        checks += [
            _check(
                (tf.shape(stop)[0] == 1) | (tf.shape(stop)[0] == batch),
                "stop must hold one row of stop strings, or one per prompt",
            ),
            _check(
                tf.shape(stop)[1] <= generation_settings.MAX_STOP_STRINGS,
                f"stop: at most {generation_settings.MAX_STOP_STRINGS} stop strings per prompt",
            ),
            _check(
                tf.reduce_all(tf.strings.length(stop) <= generation_settings.MAX_STOP_BYTES),
                f"stop strings must be at most {generation_settings.MAX_STOP_BYTES} bytes (UTF-8)",
            ),
            _check(tf.reduce_all(_valid_utf8(stop) == stop), "stop is not valid UTF-8; send UTF-8 text"),
        ]
        with tf.control_dependencies(checks):
            settings = {
                k: tf.broadcast_to(tf.reshape(v, [-1]), [batch]) for k, v in settings.items()
            }  # (B,) each
            stop = tf.broadcast_to(stop, [batch, tf.shape(stop)[1]])  # (B, S)
        n = settings["max_new_tokens"]
        temperature = settings["temperature"]
        top_p = settings["top_p"]
        checks = [
            _check(
                tf.reduce_all((n >= 1) & (n <= self.max_new_tokens_limit)),
                f"max_new_tokens must be in [1, {self.max_new_tokens_limit}] (max_new_tokens_limit of "
                "this export)",
            ),
            _check(
                tf.reduce_all(tf.math.is_finite(temperature) & (temperature >= 0.0)),
                "temperature must be >= 0 (0 is greedy)",
            ),
            _check(tf.reduce_all(settings["top_k"] >= 0), "top_k must be >= 0 (0 keeps every token)"),
            _check(
                tf.reduce_all((top_p > 0.0) & (top_p <= 1.0)), "top_p must be in (0, 1] (1 keeps every token)"
            ),
        ]
        with tf.control_dependencies(checks):
            prompt = tf.where(tf.strings.length(prompt) == 0, EMPTY_PROMPT, prompt)
        ids = self.tokenizer.tokenize(prompt)  # (B, None)
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        if self.decoder.context:
            ids = ids[:, -self.decoder.context :]  # keep the last `context` tokens
        kept = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        seed = settings["seed"]
        random_seeds = tf.random.uniform([batch], 0, generation_settings.RANDOM_SEED_LIMIT, dtype=tf.int64)
        seed = tf.where(seed < 0, random_seeds, seed)
        ids = ids.to_tensor(default_value=0)  # (B, P)
        stop_strings = StopStrings(self.tokenizer.detokenize, stop)

        def plain_graph():
            return decode(
                self.decoder,
                ids,
                kept,
                n,
                tf.reduce_max(n),
                temperature,
                settings["top_k"],
                top_p,
                seed,
                unknown_id=self.unknown_id,
                eot_id=self.eot_id,
                stop_check=stop_strings.check,
            )  # (B, N) tokens

        def compiled():
            return self._decode_compiled(ids, kept, n, temperature, settings["top_k"], top_p, seed)

        # Stop strings need string ops, which XLA cannot compile: with them the plain graph runs.
        if not self.jit_compile or has_stops:
            decoded = plain_graph()
        elif has_stops is None:
            decoded = tf.cond(stop_strings.longest > 0, plain_graph, compiled)
        else:
            decoded = compiled()
        new_tokens = decoded.tokens  # (B, N), -1 after each row's end
        count = tf.reduce_sum(tf.cast(new_tokens >= 0, tf.int32), axis=1)  # (B,)
        # The text ends before its first stop string (a row that stopped at one keeps the token
        # that completed it, which may hold text after the stop string).
        text, cut = stop_strings.find(tf.maximum(new_tokens, 0), tf.zeros_like(count), count)  # (B,) each
        text = tf.where(
            cut >= 0, tf.strings.substr(text, tf.zeros_like(cut), tf.maximum(cut, 0)), text
        )  # (B,)
        return {
            "continuation": _valid_utf8(text),
            "finish_reason": tf.where(decoded.stopped, "stop", "length"),
            "completion_tokens": decoded.completion_tokens,
            "prompt_tokens_dropped": lengths - kept,
        }

    def _decode_compiled(self, ids, lengths, max_new_tokens, temperature, top_k, top_p, seeds):
        """`decode` as an XLA program, on inputs padded to shape buckets: the batch, the
        prompts' width and the room for new tokens each rounded up to a power of two.
        Padding rows (one token, one new token) are dropped from the result; the wider
        buffers change no row's tokens (see `decode`). Returns a `Decoded` whose tokens
        are `(B, N')` with `N' >= N`, every row's extra columns -1 like the columns after
        its own end."""
        batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
        rows = bucket(batch)
        padded_width = bucket(width)
        if self.decoder.context:
            padded_width = tf.minimum(padded_width, self.decoder.context)
        extra = rows - batch

        def pad(values, value):
            return tf.concat([values, tf.fill([extra], tf.constant(value, values.dtype))], axis=0)

        # The room's static shape becomes the loop's buffer width inside the XLA program.
        room = tf.zeros([bucket(tf.reduce_max(max_new_tokens)), 0])
        decoded = self._xla_decode(
            tf.pad(ids, [[0, extra], [0, padded_width - width]]),  # (rows, padded width)
            pad(lengths, 1),
            pad(max_new_tokens, 1),
            room,
            pad(temperature, 0.0),
            pad(top_k, 0),
            pad(top_p, 1.0),
            pad(seeds, 0),
        )  # (rows, N') tokens
        return Decoded(*(value[:batch] for value in decoded))

    def _decode_buckets(self, ids, lengths, max_new_tokens, room, temperature, top_k, top_p, seeds):
        # Inside XLA every shape is a compile-time constant, the room's too.
        new_width = tf.shape(room)[0]
        with _slice_update_as(_KERAS_SLICE_UPDATE):  # see stock_ops_only
            return decode(
                self.decoder,
                ids,
                lengths,
                max_new_tokens,
                new_width,
                temperature,
                top_k,
                top_p,
                seeds,
                unknown_id=self.unknown_id,
                eot_id=self.eot_id,
            )


@contextlib.contextmanager
def stock_ops_only():
    """While active, Keras's `ops.slice_update` traces to a stock TensorFlow op.

    Keras's TensorFlow backend implements `slice_update` with XLA's
    `XlaDynamicUpdateSlice`, which runs outside XLA only through an on-demand XLA
    compile: TF Serving, whose XLA CPU JIT is off by default, cannot run it. This
    swaps in `TensorStridedSliceUpdate` (same result for in-range updates, a
    kernel on every TF build) for graphs traced inside the block.

    It patches Keras's private `keras.src.backend.tensorflow.core.dynamic_update_slice`,
    because Keras has no public way to choose how its TensorFlow backend lowers
    `slice_update`, and the attention layer's cache write must stay `keras.ops` to
    run on every backend. `tests/serving/test_generation_module.py` fails if Keras
    moves the function or stops lowering `slice_update` through it. An XLA function
    traced inside the block (`jit_compile=True`) goes back to Keras's own op, which
    XLA updates in place; the stock op needs offsets known at compile time.
    """
    with _slice_update_as(_strided_slice_update):
        yield


@contextlib.contextmanager
def _slice_update_as(function):
    original = keras_tensorflow_core.dynamic_update_slice
    keras_tensorflow_core.dynamic_update_slice = function
    try:
        yield
    finally:
        keras_tensorflow_core.dynamic_update_slice = original


def _strided_slice_update(operand, update, start_indices):
    begin = tf.stack([tf.cast(i, tf.int32) for i in start_indices])  # (rank,)
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=operand, begin=begin, end=begin + tf.shape(update), strides=tf.ones_like(begin), value=update
    )


def _stop_row(stops):
    """The stop strings as one row, tf.string `(1, S)` (`(1, 0)` for none)."""
    return tf.constant([list(stops)], tf.string, shape=[1, len(stops)])


def _check(condition, message):
    """An op that raises InvalidArgumentError("assertion failed: [message]") unless condition holds."""
    return tf.debugging.Assert(condition, [message])


def _valid_utf8(text):
    """`text` with every invalid UTF-8 sequence replaced by U+FFFD (a no-op on valid text)."""
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
