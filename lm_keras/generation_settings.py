"""Generation settings: the defaults and limits of generate, export and serving, and their checks.

One TensorFlow-free module, so the commands check their flags before TensorFlow
loads, and `generate`, the export's signatures and the commands agree on every
default, limit and message.
"""

import numbers

# The settings' defaults: `lm_keras.generation.generate`, `python -m lm_keras.generate`, and an
# export's `serving_default` (the defaults of its `generate` signature).
MAX_NEW_TOKENS = 200
TEMPERATURE = 0.8
TOP_K = 200
TOP_P = 1.0
# An export's limits, checked against every request inside its graph.
MAX_PROMPT_BYTES = 8192
MAX_NEW_TOKENS_LIMIT = 1024
MAX_BATCH_SIZE = 64
# A seed given is in [0, SEED_LIMIT); without one, a seed is drawn from [0, RANDOM_SEED_LIMIT).
SEED_LIMIT = 2**62
RANDOM_SEED_LIMIT = 2**31 - 1
# The seed an export's request sends for "draw one at random" (any seed < 0 does).
RANDOM_SEED = -1
# Request batching, named as TF Serving's batching parameters are: `python -m lm_keras.serve`'s
# --max_batch_size and --batch_timeout_micros, and the batching_parameters.txt an export writes
# for TF Serving. A batch runs when it holds this many prompts, or this long after its first
# request arrived; a few milliseconds are little beside a generation's hundreds.
BATCHING_MAX_BATCH_SIZE = 16
BATCHING_TIMEOUT_MICROS = 5000


def settings_problem(
    max_new_tokens=None,
    temperature=None,
    top_k=None,
    top_p=None,
    seed=None,
    min_new_tokens=0,
    max_new_tokens_limit=None,
):
    """A one-line message for the first setting out of range, or None when all are fine.

    Settings left at None are not checked: `max_new_tokens` an int in
    `[min_new_tokens, max_new_tokens_limit]` (no upper limit when that is None),
    `temperature` >= 0 (0 is greedy), `top_k` an int >= 0 (0 keeps every token), `top_p`
    in (0, 1] (1 keeps every token) and `seed` an int in `[0, SEED_LIMIT)`. Commands put
    "--" before the message, which names each setting as its flag does.

    Example:

    >>> settings_problem(temperature=-1.0)
    'temperature must be >= 0 (0 is greedy); received temperature=-1.0'
    """
    if max_new_tokens is not None:
        high = max_new_tokens_limit
        if (
            not _is_int(max_new_tokens)
            or max_new_tokens < min_new_tokens
            or (high is not None and max_new_tokens > high)
        ):
            where = f"in [{min_new_tokens}, {high}]" if high is not None else f">= {min_new_tokens}"
            return f"max_new_tokens must be an int {where}; received max_new_tokens={max_new_tokens!r}"
    if temperature is not None and (not _is_real(temperature) or not temperature >= 0):
        return f"temperature must be >= 0 (0 is greedy); received temperature={temperature!r}"
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        return f"top_k must be an int >= 0 (0 keeps every token); received top_k={top_k!r}"
    if top_p is not None and (not _is_real(top_p) or not 0.0 < top_p <= 1.0):
        return f"top_p must be in (0, 1] (1 keeps every token); received top_p={top_p!r}"
    if seed is not None and (not _is_int(seed) or not 0 <= seed < SEED_LIMIT):
        return f"seed must be an int in [0, 2**62); received seed={seed!r}"
    return None


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
