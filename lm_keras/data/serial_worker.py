"""SerialWorker: calls run one after another on a thread of their own, in the order given."""

import collections
import concurrent.futures


class SerialWorker:
    """Runs calls one after another on a thread of its own while the caller goes on.

    Prepare hands it its disk writes (and the scan its hashing: hashlib lets go of the
    GIL), so they overlap the encoding of what follows. At most `depth` calls wait:
    memory stays bounded however far the caller runs ahead. After a call fails, the later
    ones do not run (a resume state saved after a shard that failed to be written would
    claim that shard), and the error is raised by a later `submit` or by `close`.

    Args:
        depth: how many calls may wait before `submit` blocks.

    Example:
        with SerialWorker(depth=32) as worker:
            worker.submit(path.write_bytes, data)
        # leaving the block waits for every call; an error in the block drops what waits
    """

    def __init__(self, depth):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending, self._depth, self._error = collections.deque(), depth, None

    def _run(self, fn, args):
        if self._error is not None:
            raise self._error
        try:
            return fn(*args)
        except BaseException as e:
            self._error = e
            raise

    def submit(self, fn, *args):
        try:
            while self._pending and (self._pending[0].done() or len(self._pending) >= self._depth):
                self._pending.popleft().result()
        except BaseException:
            self._pool.shutdown(cancel_futures=True)
            raise
        self._pending.append(self._pool.submit(self._run, fn, args))

    def close(self):
        """Waits for every call; raises the first error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.close()
        else:  # the caller failed: what has not started is dropped
            self._pool.shutdown(cancel_futures=True)
