"""TF Serving's REST predict format, without a model: JSON in, arrays; arrays out, JSON."""

import base64
import json

import numpy as np
import pytest

from lm_keras.serving.rest_api import RequestError, format_predict_response, parse_predict_request

SIGNATURES = {
    "serving_default": {"prompt": (object, 1)},  # what tf.string.as_numpy_dtype gives
    "generate": {"prompt": (object, 1), "max_new_tokens": (np.int32, 1), "temperature": (np.float32, 1)},
}


def specs_of(name):
    if name not in SIGNATURES:
        raise RequestError(f'Serving signature name: "{name}" not found in signature def')
    return SIGNATURES[name]


def parse(doc):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode("utf-8")
    return parse_predict_request(body, specs_of)


def test_row_format_objects_and_plain_values():
    name, inputs, fmt = parse({"instances": [{"prompt": "ROMEO:"}, {"prompt": "é"}]})
    assert (name, fmt) == ("serving_default", "row")
    assert inputs["prompt"].tolist() == [b"ROMEO:", "é".encode()]
    _, plain, _ = parse({"instances": ["ROMEO:", {"b64": base64.b64encode(b"\xff").decode()}]})
    assert plain["prompt"].tolist() == [b"ROMEO:", b"\xff"]


def test_row_format_stacks_every_input_of_a_signature():
    _, inputs, _ = parse(
        {
            "signature_name": "generate",
            "instances": [
                {"prompt": "a", "max_new_tokens": 3, "temperature": 0},
                {"prompt": "b", "max_new_tokens": 5, "temperature": 0.5},
            ],
        }
    )
    assert inputs["max_new_tokens"].dtype == np.int32 and inputs["max_new_tokens"].tolist() == [3, 5]
    assert inputs["temperature"].dtype == np.float32 and inputs["temperature"].tolist() == [0.0, 0.5]


def test_columnar_format():
    _, inputs, fmt = parse({"inputs": {"prompt": ["a", "b"]}})
    assert fmt == "columnar" and inputs["prompt"].tolist() == [b"a", b"b"]
    _, inputs, _ = parse({"inputs": ["a"]})
    assert inputs["prompt"].tolist() == [b"a"]


@pytest.mark.parametrize(
    "body,message",
    [
        (b"{not json", "JSON Parse error"),
        (b"\xff\xfe", "not UTF-8"),
        ([1, 2], "must be a JSON object"),
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": {"prompt": "a"}}, "to be an list/array"),
        (
            {"instances": [{"prompt": "a"}], "inputs": {"prompt": ["a"]}},
            "only one of 'inputs' or 'instances'",
        ),
        ({"instances": [{"prompt": "a", "extra": 1}]}, "must only have keys: prompt"),
        (
            {"signature_name": "generate", "instances": [{"prompt": "a"}]},
            "must only have keys: max_new_tokens,prompt,temperature",
        ),
        ({"signature_name": "generate", "instances": ["a"]}, "instances is a plain list"),
        (
            {"signature_name": "generate", "inputs": {"prompt": ["a"], "temperature": [1.0]}},
            "Missing named input: max_new_tokens",
        ),
        ({"signature_name": "nope", "instances": ["a"]}, 'Serving signature name: "nope" not found'),
        ({"instances": [{"prompt": 5}]}, "is not of expected type: string"),
        ({"instances": [{"prompt": "a"}, "b"]}, "Expecting object at item 1"),
        (
            {
                "signature_name": "generate",
                "instances": [{"prompt": "a", "max_new_tokens": 1.5, "temperature": 0}],
            },
            "is not of expected type: int32",
        ),
        (
            {
                "signature_name": "generate",
                "instances": [{"prompt": "a", "max_new_tokens": True, "temperature": 0}],
            },
            "is not of expected type: int32",
        ),
        ({"instances": [{"prompt": ["a", "b"]}, {"prompt": ["c"]}]}, "must have the same shape"),
        ({"instances": [{"prompt": [["a"], "b"]}]}, "found at incorrect level"),
        ({"instances": [{"prompt": [["a"], ["b", "c"]]}]}, "lists must be rectangular"),
        ({"instances": [{"prompt": {"b64": "!!"}}]}, "Unable to base64 decode"),
        (
            {
                "signature_name": "generate",
                "instances": [{"prompt": "a", "max_new_tokens": 2**40, "temperature": 0}],
            },
            "out of range for int32",
        ),
    ],
)
def test_requests_tf_serving_refuses_are_refused(body, message):
    with pytest.raises(RequestError, match=message):
        parse(body)


def test_responses_in_both_formats():
    outputs = {
        "continuation": np.array([b"ab", "é".encode()], dtype=object),
        "prompt_tokens_dropped": np.array([0, 3], np.int32),
    }
    assert format_predict_response(outputs, "row") == {
        "predictions": [
            {"continuation": "ab", "prompt_tokens_dropped": 0},
            {"continuation": "é", "prompt_tokens_dropped": 3},
        ]
    }
    assert format_predict_response(outputs, "columnar") == {
        "outputs": {"continuation": ["ab", "é"], "prompt_tokens_dropped": [0, 3]}
    }
    single = {"text": np.array([b"x"], dtype=object)}
    assert format_predict_response(single, "row") == {"predictions": ["x"]}
    assert format_predict_response(single, "columnar") == {"outputs": ["x"]}
    logits = {"logits": np.array([[0.5, -1.0]], np.float32)}
    assert format_predict_response(logits, "row") == {"predictions": [[0.5, -1.0]]}
    raw = {"token_bytes": np.array([b"\xff"], dtype=object)}
    assert format_predict_response(raw, "row") == {"predictions": [{"b64": "/w=="}]}


def test_stop_strings_are_a_list_per_instance_and_the_answers_rows():
    """generate's stop input: a list of strings per instance, (B, S) for the graph; lists of
    different lengths are refused, as TF Serving refuses them, with how to pad them."""
    specs = {"prompt": (object, 1), "stop": (object, 2)}
    instances = [{"prompt": "a", "stop": ["\n", ""]}, {"prompt": "b", "stop": ["END", "\u00a7"]}]
    body = json.dumps({"signature_name": "generate", "instances": instances}).encode()
    _, inputs, _ = parse_predict_request(body, lambda name: specs)
    assert inputs["stop"].shape == (2, 2) and inputs["stop"].tolist() == [
        [b"\n", b""],
        [b"END", "\u00a7".encode()],
    ]
    body = json.dumps({"instances": [{"prompt": "a", "stop": []}, {"prompt": "b", "stop": []}]}).encode()
    assert parse_predict_request(body, lambda name: specs)[1]["stop"].shape == (2, 0)
    ragged = json.dumps({"instances": [{"prompt": "a", "stop": ["x"]}, {"prompt": "b", "stop": []}]}).encode()
    with pytest.raises(
        RequestError, match='every instance must have the same shape.*pad shorter lists with ""'
    ):
        parse_predict_request(ragged, lambda name: specs)
    outputs = {
        "continuation": np.array([b"to be", b""], object),
        "finish_reason": np.array([b"stop", b"length"], object),
        "completion_tokens": np.array([6, 12], np.int32),
    }
    assert format_predict_response(outputs, "row") == {
        "predictions": [
            {"completion_tokens": 6, "continuation": "to be", "finish_reason": "stop"},
            {"completion_tokens": 12, "continuation": "", "finish_reason": "length"},
        ]
    }
