"""Request batching for the development server, named as TF Serving's batching parameters are."""

import threading
import time

import numpy as np

from lm_keras import generation_settings

# The signatures whose calls batch: each row's answer depends on that row alone (the decoding
# loop gives a row what decoding it alone gives, with its own seed), and every input and output
# has the batch first. Other signatures run as they come.
BATCHED_SIGNATURES = ("serving_default", "generate", "generate_tokens")
# Rows of a 2-D input (token ids, stop strings) are right-padded to the widest call's width with
# what the signatures ignore: -1 for ids, "" for strings.
_PAD = {"O": b"", "i": -1}


class RequestBatcher:
    """Runs concurrent calls of one signature as one batched call.

    A call waits in a queue; one thread takes the oldest call, then the calls of
    the same signature that arrive within `batch_timeout_micros` of it, up to
    `max_batch_size` rows in all, concatenates their inputs along the batch,
    runs them once and hands each call its own rows of the outputs (2-D inputs of
    different widths, such as the token ids of `generate_tokens`, are right-padded
    with -1, or "" for strings, which the signatures ignore). If the
    batched call fails (one bad prompt fails the whole graph call), each call of
    the batch runs alone, so only the bad one gets the error.

    Args:
        run: function (signature, {input: array}) -> {output: array}, arrays
            batch first (`SessionModel.run`).
        max_batch_size: the most rows in one batched call (a call with more
            runs alone).
        batch_timeout_micros: how long a batch waits for more calls after its
            first arrived.

    Example:

    >>> batcher = RequestBatcher(model.run, max_batch_size=16, batch_timeout_micros=5000)
    >>> batcher.run("serving_default", {"prompt": np.array([b"ROMEO:"], object)})
    {'continuation': array([b'...'], dtype=object), ...}
    >>> batcher.close()
    """

    def __init__(self, run, max_batch_size, batch_timeout_micros):
        problem = generation_settings.serving_problem(
            max_batch_size=max_batch_size, batch_timeout_micros=batch_timeout_micros
        )
        if problem:
            raise ValueError(problem)
        self._run = run
        self.max_batch_size = int(max_batch_size)
        self.batch_timeout_micros = int(batch_timeout_micros)
        self._queue = []
        self._condition = threading.Condition()
        self._closed = False
        self.batch_sizes = []  # rows of each batched call run, for tests and benchmarks
        self._thread = threading.Thread(target=self._loop, name="request-batcher", daemon=True)
        self._thread.start()

    def run(self, signature, inputs, wait=True):
        """Runs one call (blocking until its answer); raises what running it alone raises.

        With `wait=False` a batch that starts with this call takes the calls already
        queued and runs at once, without waiting for more (a caller that expects no
        company, such as the only stream of a server, saves the timeout)."""
        rows = _rows(inputs)
        if signature not in BATCHED_SIGNATURES or rows is None or rows > self.max_batch_size:
            return self._run(signature, inputs)
        call = _Call(signature, inputs, rows, wait)
        with self._condition:
            if self._closed:
                raise RuntimeError("the request batcher is closed")
            self._queue.append(call)
            self._condition.notify_all()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.outputs

    def close(self):
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()

    def _loop(self):
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return
                batch = self._collect()
            self._run_batch(batch)

    def _collect(self):
        """Takes the oldest call and the same signature's calls that fit, waiting up to the
        timeout for more (with the condition held; it is released while waiting)."""
        first = self._queue.pop(0)
        batch, rows = [first], first.rows
        deadline = first.arrived + (self.batch_timeout_micros / 1e6 if first.wait else 0.0)
        while rows < self.max_batch_size:
            for call in list(self._queue):
                if call.signature == first.signature and rows + call.rows <= self.max_batch_size:
                    self._queue.remove(call)
                    batch.append(call)
                    rows += call.rows
            remaining = deadline - time.monotonic()
            if rows >= self.max_batch_size or remaining <= 0 or self._closed:
                break
            self._condition.wait(remaining)
        return batch

    def _run_batch(self, batch):
        if len(batch) > 1:
            try:
                inputs = {
                    name: _concatenate([call.inputs[name] for call in batch]) for name in batch[0].inputs
                }
                outputs = self._run(batch[0].signature, inputs)
            except Exception:  # noqa: BLE001 (one call's error: each runs alone below)
                pass
            else:
                self.batch_sizes.append(sum(call.rows for call in batch))
                start = 0
                for call in batch:
                    call.outputs = {name: value[start : start + call.rows] for name, value in outputs.items()}
                    start += call.rows
                    call.done.set()
                return
        for call in batch:
            try:
                call.outputs = self._run(call.signature, call.inputs)
                self.batch_sizes.append(call.rows)
            except Exception as e:  # noqa: BLE001 (handed to the caller)
                call.error = e
            call.done.set()


class _Call:
    def __init__(self, signature, inputs, rows, wait=True):
        self.signature, self.inputs, self.rows, self.wait = signature, inputs, rows, wait
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.outputs = self.error = None


def _rows(inputs):
    """The batch size the inputs share, or None if they do not (the graph refuses those)."""
    sizes = {np.shape(value)[0] if np.ndim(value) else None for value in inputs.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def _concatenate(arrays):
    """The arrays along the batch; 2-D ones of different widths right-padded first (see _PAD)."""
    arrays = [np.asarray(a) for a in arrays]
    if all(a.ndim == 2 for a in arrays) and len({a.shape[1] for a in arrays}) > 1:
        width = max(a.shape[1] for a in arrays)
        pad = _PAD[arrays[0].dtype.kind]
        arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])], constant_values=pad) for a in arrays]
    return np.concatenate(arrays)
