"""TF Serving's REST predict format: JSON requests to named arrays, and results back to JSON.

Follows tensorflow_serving/util/json_tensor.cc, the code TF Serving runs:

- Row format, `{"instances": [...]}`: a non-empty list. Each element is an
  object with one key per input of the signature (all of them, no others), or,
  for a signature with one input, that input's value. Elements are stacked into
  a batch, so every input gets a leading batch dimension and each element's
  values must have the same shape. The answer is `{"predictions": [...]}`, one
  entry per row: the value, or an object of every output's value.
- Columnar format, `{"inputs": ...}`: an object with every named input (or, for
  one input, its value alone), each a whole tensor. The answer is
  `{"outputs": ...}`: the tensor, or an object of every output.
- `"signature_name"` picks the signature (default `serving_default`). Strings
  are JSON strings, or `{"b64": "..."}` for bytes; an output whose name ends
  in `_bytes` is returned as `{"b64": ...}`.

An export's `generate` signature, for example, takes in row format one object per
prompt with every input: `{"prompt": "ROMEO:", "max_new_tokens": 50, "temperature":
0.8, "top_k": 200, "top_p": 1.0, "seed": 1, "stop": ["\\n\\n", "JULIET:"]}`; `stop` is a
list of strings (the same length in every instance of a request: pad with "", which
the export ignores; `[]` for none). Each prediction holds `continuation`,
`finish_reason` ("stop" or "length"), `completion_tokens` and `prompt_tokens_dropped`.

This parser refuses what TF Serving refuses (missing or extra keys, ragged
lists, wrong JSON types), so a client that works against it works against TF
Serving. TF Serving's gRPC API also fills inputs a request leaves out with the
SignatureDef's defaults; its REST parser asks for every input, and so does this.
"""

import base64
import json

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
_BYTES_SUFFIX = "_bytes"


class RequestError(ValueError):
    """A request TF Serving would answer with 400 Bad Request; the message says why."""


def parse_predict_request(body, input_specs_of):
    """Parses a predict request body.

    Args:
        body: bytes, the request body.
        input_specs_of: function signature name -> {input name: (numpy dtype,
            rank or None)}; raises RequestError for an unknown signature.

    Returns:
        (signature name, {input name: numpy array}, "row" or "columnar").

    Raises:
        RequestError: the body is not a request TF Serving accepts.
    """
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RequestError(
            f"JSON Parse error: the body is not UTF-8 ({e.reason} at byte {e.start})"
        ) from None
    except json.JSONDecodeError as e:
        raise RequestError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    if not isinstance(doc, dict):
        raise RequestError("JSON Value: the request must be a JSON object with 'instances' or 'inputs'")
    unknown = sorted(set(doc) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(
            f"unknown keys {unknown}: a request has 'signature_name' and one of 'instances' or 'inputs'"
        )
    name = doc.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise RequestError("'signature_name' key must be a string value")
    specs = input_specs_of(name or DEFAULT_SIGNATURE)
    if "instances" in doc and "inputs" in doc:
        raise RequestError("expecting only one of 'inputs' or 'instances' keys to exist")
    if "instances" in doc:
        return name, _instances(doc["instances"], specs), "row"
    if "inputs" in doc:
        return name, _inputs(doc["inputs"], specs), "columnar"
    raise RequestError("Missing 'inputs' or 'instances' key")


def format_predict_response(outputs, request_format):
    """The JSON-ready answer to a predict request.

    Args:
        outputs: {output name: numpy array}, every array with the batch first.
        request_format: "row" or "columnar", as `parse_predict_request` returned.

    Returns:
        `{"predictions": [...]}` or `{"outputs": ...}`, as TF Serving writes them.
    """
    values = {name: _to_json(name, np.asarray(array)) for name, array in sorted(outputs.items())}
    if request_format == "columnar":
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {name: np.asarray(array).shape[0] if np.ndim(array) else None for name, array in outputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise RequestError(
            f"the outputs have different batch sizes {sizes}; ask in the columnar 'inputs' format instead"
        )
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    rows = next(iter(sizes.values()))
    return {"predictions": [{name: value[i] for name, value in values.items()} for i in range(rows)]}


def _instances(instances, specs):
    if not isinstance(instances, list):
        raise RequestError("Excepting 'instances' to be an list/array")
    if not instances:
        raise RequestError("No values in 'instances' array")
    names = set(specs)
    objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not objects and len(specs) > 1:
        raise RequestError(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            f"required as per tensorinfo_map: {', '.join(sorted(names))}"
        )
    columns = {name: [] for name in specs}
    for i, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not _is_b64(element)
        if objects != element_is_object:
            raise RequestError(f"Expecting {'object' if objects else 'value/list'} at item {i} of input list")
        if not objects:
            element = {next(iter(specs)): element}
        if set(element) != names:
            raise RequestError(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{json.dumps(element)[:200]} must only have keys: {','.join(sorted(names))}"
            )
        for name, value in element.items():
            try:
                columns[name].append(_to_array(value, specs[name][0]))
            except RequestError as e:
                raise RequestError(
                    f"Failed to process element: {i} key: {name} of 'instances' list. Error: {e}"
                ) from None
    arrays = {}
    for name, items in columns.items():
        shapes = {item.shape for item in items}
        if len(shapes) > 1:
            hint = (
                ' (pad shorter lists with "", which a signature that takes lists of strings, such as '
                "generate's stop, ignores)"
                if np.dtype(specs[name][0]).kind == "O"
                else ""
            )
            raise RequestError(
                f"input {name!r}: every instance must have the same shape; received shapes "
                f"{sorted(shapes)}{hint}"
            )
        arrays[name] = np.stack(items)
    return arrays


def _inputs(inputs, specs):
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(specs) > 1:
            raise RequestError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                f"required as per tensorinfo_map: {', '.join(sorted(specs))}"
            )
        inputs = {next(iter(specs)): inputs}
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise RequestError(
            f"unknown inputs {unknown} in 'inputs' object; the signature's inputs are "
            f"{', '.join(sorted(specs))}"
        )
    arrays = {}
    for name, (dtype, _) in specs.items():
        if name not in inputs:
            raise RequestError(f"Missing named input: {name} in 'inputs' object.")
        try:
            arrays[name] = _to_array(inputs[name], dtype)
        except RequestError as e:
            raise RequestError(f"input {name!r}: {e}") from None
    return arrays


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _to_array(value, dtype):
    """A JSON value (scalar or nested lists) as a numpy array of `dtype`."""
    dtype = np.dtype(dtype)
    shape = _shape(value)
    flat = []

    def walk(v, level):
        if isinstance(v, list):
            if level >= len(shape) or len(v) != shape[level]:
                raise RequestError(
                    f"Encountered list at unexpected size: {len(v)} at level: {level}; "
                    "lists must be rectangular"
                )
            for item in v:
                walk(item, level + 1)
        elif level != len(shape):
            raise RequestError(f"JSON Value: {json.dumps(v)} found at incorrect level: {level + 1}")
        else:
            flat.append(_scalar(v, dtype))

    walk(value, 0)
    if dtype.kind == "O":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.array(flat, dtype=dtype).reshape(shape)


def _scalar(v, dtype):
    if dtype.kind == "O":
        if isinstance(v, str):
            return v.encode("utf-8")
        if _is_b64(v):
            try:
                return base64.b64decode(v["b64"], validate=True)
            except ValueError:
                raise RequestError("Unable to base64 decode") from None
        raise RequestError(f"JSON Value: {json.dumps(v)[:80]} is not of expected type: string")
    if np.issubdtype(dtype, np.integer):
        if not isinstance(v, int) or isinstance(v, bool):
            raise RequestError(f"JSON Value: {json.dumps(v)[:80]} is not of expected type: {dtype.name}")
        info = np.iinfo(dtype)
        if not info.min <= v <= info.max:
            raise RequestError(f"JSON Value: {v} is out of range for {dtype.name}")
        return v
    if np.issubdtype(dtype, np.floating):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RequestError(f"JSON Value: {json.dumps(v)[:80]} is not of expected type: {dtype.name}")
        return v
    if dtype.kind == "b":
        if not isinstance(v, bool):
            raise RequestError(f"JSON Value: {json.dumps(v)[:80]} is not of expected type: bool")
        return v
    raise RequestError(f"Conversion of JSON Value to type {dtype.name} is not supported")


def _to_json(name, array):
    if array.dtype == np.object_ or array.dtype.kind == "S":
        if name.endswith(_BYTES_SUFFIX):
            convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            convert = lambda b: b.decode("utf-8", "replace")  # noqa: E731
        return _map_nested(array.tolist(), convert)
    # Non-finite floats come out as NaN / Infinity / -Infinity, as TF Serving writes them.
    return array.tolist()


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)
