"""Generation settings: the defaults and limits of generate, export and serving, and their checks.

One TensorFlow-free module, so the commands check their flags before TensorFlow
loads, and `generate`, the export's signatures, the server and the commands agree
on every default, limit and message. Each group has one check that returns a
one-line message or None: `settings_problem` (sampling), `stop_problem` (stop
strings), `export_limits_problem` (an export's request limits), `serving_problem`
(the development server). Commands put "--" before the message; the library classes
raise ValueError with it (`generate` a UserError).
"""

import numbers

# The settings' defaults: `lm_keras.generation.generate`, `python -m lm_keras.generate`, and an
# export's `serving_default` (the defaults of its `generate` signature).
MAX_NEW_TOKENS = 200
TEMPERATURE = 0.8
TOP_K = 200
TOP_P = 1.0
# An export's limits, checked against every request inside its graph. A request holds at most
# MAX_PROMPTS_PER_REQUEST prompts: a refusal, unlike the server's batching below, which merges
# requests into calls of up to BATCHING_MAX_BATCH_SIZE prompts.
MAX_PROMPT_BYTES = 8192
MAX_NEW_TOKENS_LIMIT = 1024
MAX_PROMPTS_PER_REQUEST = 64
# Stop strings: at most MAX_STOP_STRINGS per prompt, each at most MAX_STOP_BYTES bytes (UTF-8), so
# the search at each step of the decoding loop stays a few hundred substring comparisons per row.
MAX_STOP_STRINGS = 16
MAX_STOP_BYTES = 256
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
# The development server's other defaults: TF Serving's REST port, the largest request body,
# and how long a client that sends nothing (half a body, say) holds its thread.
SERVING_PORT = 8501
SERVING_MAX_BODY_BYTES = 1 << 20
SERVING_REQUEST_TIMEOUT_S = 30.0


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


def stop_problem(stop):
    """A one-line message when `stop` is not None, a str or a list of str that `stop_list`
    accepts: each non-empty, at most MAX_STOP_BYTES bytes (UTF-8), at most MAX_STOP_STRINGS.

    Example:

    >>> stop_problem([""])
    "stop strings must not be empty (an empty string would stop before any text); received stop=['']"
    """
    if stop is None:
        return None
    strings = [stop] if isinstance(stop, str) else stop
    if not isinstance(strings, (list, tuple)) or not all(isinstance(s, str) for s in strings):
        return f"stop must be a str or a list of str; received stop={stop!r}"
    if not all(strings):
        return (
            "stop strings must not be empty (an empty string would stop before any text); "
            f"received stop={stop!r}"
        )
    if len(strings) > MAX_STOP_STRINGS:
        return f"stop takes at most {MAX_STOP_STRINGS} strings; received {len(strings)}"
    for s in strings:
        if len(s.encode("utf-8", "surrogatepass")) > MAX_STOP_BYTES:
            return f"each stop string must be at most {MAX_STOP_BYTES} bytes (UTF-8); received {s[:40]!r}..."
    return None


def stop_list(stop):
    """`stop` (None, a str or a list of str, checked by `stop_problem`) as a list of str,
    without repeats, in order."""
    if stop is None:
        return []
    return list(dict.fromkeys([stop] if isinstance(stop, str) else stop))


def export_limits_problem(max_prompt_bytes=None, max_new_tokens_limit=None, max_prompts_per_request=None):
    """A one-line message for the first of an export's request limits that is not an int > 0, or
    None. Limits left at None are not checked.

    Example:

    >>> export_limits_problem(max_prompts_per_request=0)
    'max_prompts_per_request must be an int > 0; received max_prompts_per_request=0'
    """
    limits = dict(
        max_prompt_bytes=max_prompt_bytes,
        max_new_tokens_limit=max_new_tokens_limit,
        max_prompts_per_request=max_prompts_per_request,
    )
    for name, value in limits.items():
        if value is not None and (not _is_int(value) or value <= 0):
            return f"{name} must be an int > 0; received {name}={value!r}"
    return None


def serving_problem(
    model_name=None,
    port=None,
    max_body_bytes=None,
    request_timeout_s=None,
    max_batch_size=None,
    batch_timeout_micros=None,
):
    """A one-line message for the first server setting out of range, or None.

    Settings left at None are not checked: `model_name` a non-empty name without '/' or ':'
    (it is a URL path segment), `port` in [0, 65535] (0 picks a free one), `max_body_bytes`
    an int > 0, `request_timeout_s` > 0, `max_batch_size` an int >= 1 (1 runs each request
    alone) and `batch_timeout_micros` an int >= 0.

    Example:

    >>> serving_problem(max_batch_size=0)
    'max_batch_size must be an int >= 1 (1 runs each request alone); received max_batch_size=0'
    """
    if model_name is not None and (
        not isinstance(model_name, str) or not model_name or "/" in model_name or ":" in model_name
    ):
        return f"model_name must be a name without '/' or ':'; received model_name={model_name!r}"
    if port is not None and (not _is_int(port) or not 0 <= port <= 65535):
        return f"port must be an int in [0, 65535] (0 picks a free one); received port={port!r}"
    if max_body_bytes is not None and (not _is_int(max_body_bytes) or max_body_bytes <= 0):
        return f"max_body_bytes must be an int > 0; received max_body_bytes={max_body_bytes!r}"
    if request_timeout_s is not None and (not _is_real(request_timeout_s) or not request_timeout_s > 0):
        return f"request_timeout_s must be > 0; received request_timeout_s={request_timeout_s!r}"
    if max_batch_size is not None and (not _is_int(max_batch_size) or max_batch_size < 1):
        return (
            "max_batch_size must be an int >= 1 (1 runs each request alone); "
            f"received max_batch_size={max_batch_size!r}"
        )
    if batch_timeout_micros is not None and (not _is_int(batch_timeout_micros) or batch_timeout_micros < 0):
        return (
            "batch_timeout_micros must be an int >= 0; "
            f"received batch_timeout_micros={batch_timeout_micros!r}"
        )
    return None


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
