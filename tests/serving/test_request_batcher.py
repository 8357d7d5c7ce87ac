"""RequestBatcher: concurrent calls run as one, each answered with its own rows."""

import re
import threading
import time

import numpy as np
import pytest

from lm_keras.serving.request_batcher import RequestBatcher


class FakeModel:
    """Answers each prompt with its reversal; a prompt "bad" fails the whole call, as a
    check in the graph does. Records the rows of every call."""

    def __init__(self, delay=0.0):
        self.calls, self.delay, self.lock = [], delay, threading.Lock()

    def run(self, signature, inputs):
        prompts = inputs["prompt"]
        with self.lock:
            self.calls.append((signature, len(prompts)))
        time.sleep(self.delay)
        if b"bad" in list(prompts):
            raise ValueError("prompt is bad")
        return {"continuation": np.array([p[::-1] for p in prompts], object), "rows": np.arange(len(prompts))}


def ask_together(batcher, requests):
    """Runs [(signature, [prompt, ...])] from one thread each, all at once; returns answers or errors."""
    answers = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def ask(i, signature, prompts):
        start.wait()
        try:
            answers[i] = batcher.run(signature, {"prompt": np.array(prompts, object)})
        except Exception as e:  # noqa: BLE001 (the answer under test)
            answers[i] = e

    threads = [threading.Thread(target=ask, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_concurrent_calls_run_as_one_batch_and_each_gets_its_own_rows():
    model = FakeModel()
    batcher = RequestBatcher(model.run, max_batch_size=16, batch_timeout_micros=500_000)
    requests = [("serving_default", [f"p{i}".encode(), f"q{i}".encode()]) for i in range(6)]
    answers = ask_together(batcher, requests)
    batcher.close()
    for (_, prompts), answer in zip(requests, answers):
        assert list(answer["continuation"]) == [p[::-1] for p in prompts]
    # Each call got the rows of the batched call that hold its prompts, in its order.
    rows = sorted(answer["rows"].tolist() for answer in answers)
    assert rows == [[2 * i, 2 * i + 1] for i in range(6)]
    # Within the half-second window all 6 calls (12 rows) are one batched call.
    assert model.calls == [("serving_default", 12)] and batcher.batch_sizes == [12]


def test_a_batch_holds_at_most_max_batch_size_rows():
    model = FakeModel(delay=0.05)
    batcher = RequestBatcher(model.run, max_batch_size=4, batch_timeout_micros=200_000)
    answers = ask_together(
        batcher, [("generate", [f"{i}".encode()] * 3) for i in range(4)] + [("generate", [b"x"] * 5)]
    )
    batcher.close()
    assert all(not isinstance(a, Exception) for a in answers), answers
    # 3 + 3 > 4: each 3-row call runs alone; the 5-row call is over the limit and runs alone too.
    assert sorted(rows for _, rows in model.calls) == [3, 3, 3, 3, 5]
    assert all(rows <= 4 for rows in batcher.batch_sizes)


def test_signatures_do_not_mix_and_others_run_alone():
    model = FakeModel()
    batcher = RequestBatcher(model.run, max_batch_size=16, batch_timeout_micros=300_000)
    answers = ask_together(
        batcher,
        [
            ("serving_default", [b"a"]),
            ("generate", [b"b"]),
            ("serving_default", [b"c"]),
            ("tokenize", [b"d"]),
        ],
    )
    batcher.close()
    assert [list(a["continuation"]) for a in answers] == [[b"a"], [b"b"], [b"c"], [b"d"]]
    assert sorted(model.calls) == [("generate", 1), ("serving_default", 2), ("tokenize", 1)]


def test_a_bad_call_fails_alone_and_the_rest_of_its_batch_is_answered():
    model = FakeModel()
    batcher = RequestBatcher(model.run, max_batch_size=16, batch_timeout_micros=300_000)
    answers = ask_together(
        batcher, [("serving_default", [b"ok1"]), ("serving_default", [b"bad"]), ("serving_default", [b"ok2"])]
    )
    batcher.close()
    assert isinstance(answers[1], ValueError) and "bad" in str(answers[1])
    assert [list(answers[i]["continuation"]) for i in (0, 2)] == [[b"1ko"], [b"2ko"]]
    # The batched call failed, then each call ran alone.
    assert (
        model.calls[0] == ("serving_default", 3) and sorted(model.calls[1:]) == [("serving_default", 1)] * 3
    )


def test_a_call_waits_at_most_the_timeout_for_company():
    model = FakeModel()
    batcher = RequestBatcher(model.run, max_batch_size=16, batch_timeout_micros=20_000)
    started = time.monotonic()
    answer = batcher.run("serving_default", {"prompt": np.array([b"alone"], object)})
    waited = time.monotonic() - started
    batcher.close()
    assert list(answer["continuation"]) == [b"enola"] and 0.02 <= waited < 2.0


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            dict(max_batch_size=0, batch_timeout_micros=0),
            "max_batch_size must be an int >= 1 (1 runs each request alone); received max_batch_size=0",
        ),
        (
            dict(max_batch_size=2, batch_timeout_micros=-1),
            "batch_timeout_micros must be an int >= 0; received",
        ),
    ],
)
def test_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RequestBatcher(FakeModel().run, **settings)
