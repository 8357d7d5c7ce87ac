"""SerialWorker: calls run in order on one thread; after a failure the later ones do not run."""

import threading

import pytest

from lm_keras.data.serial_worker import SerialWorker


def test_calls_run_in_order_on_one_thread_beside_the_caller():
    done, threads = [], set()

    def record(i):
        threads.add(threading.get_ident())
        done.append(i)

    with SerialWorker(depth=3) as worker:
        for i in range(100):
            worker.submit(record, i)
    assert done == list(range(100))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_after_a_failure_later_calls_do_not_run_and_the_error_reaches_the_caller():
    done = []
    gate = threading.Event()

    def fail():
        gate.wait(10)
        raise OSError("disk gone")

    worker = SerialWorker(depth=8)
    worker.submit(fail)
    worker.submit(done.append, "after")  # queued behind the failure: it must not run
    gate.set()
    with pytest.raises(OSError, match="disk gone"):
        worker.close()
    assert done == []


def test_an_error_in_the_block_drops_what_waits():
    done = []
    gate = threading.Event()
    with pytest.raises(KeyError), SerialWorker(depth=8) as worker:
        worker.submit(gate.wait, 10)
        for i in range(5):
            worker.submit(done.append, i)
        raise KeyError("the caller failed")
    gate.set()
    assert done == []
