"""Decoding in worker processes that can be killed: the decoder cannot stall or blow up Warden.

A thread cannot be cancelled, and a decoder running in the service's own
process can take all of its memory. So untrusted bytes are decoded in a few
prewarmed worker processes, each with hard limits set by the operating system:

- address space (`RLIMIT_AS`): what the worker had after warming up, plus
  `memory_mb`; an allocation past it fails inside the worker (a `MemoryError`,
  refused `too_many_pixels`) and never reaches Lemmy, PostgreSQL or Warden;
- CPU time (`RLIMIT_CPU`), re-armed before each file: the kernel ends a worker
  that spins past the deadline even if the service itself were stuck;
- a wall-clock deadline kept by the caller, who kills the worker the moment it
  overruns (`decode_timeout`) and forks a replacement at once, so a timeout
  frees capacity instead of holding it (pict-rs does the same with its
  external processes and `process_timeout`).

Workers start from the `forkserver` (never a fork of the threaded service),
with the decoding modules preloaded there, so a replacement is a fork of a
warm process: milliseconds, not an interpreter start. Only small things travel
back: the frames reduced to about 320 px and the media facts. The caller
PDQ-hashes those frames (bounded work on bounded input): measured in the scan
loop, PDQ in a worker took 5.7 ms a file against 3.3 ms in the service, as the
worker wakes on a cold core for each file, which cost the scanner ~25% of its
throughput; decoding alone there costs ~1 ms a file more than in-process.

The standard library is enough, and a custom supervisor fits better than a
library pool: `concurrent.futures.ProcessPoolExecutor` cannot kill one task
(a dead worker breaks the whole pool), and pebble's timeout is polled by a
manager thread and needs the per-file CPU limit armed in the task anyway. Here
each worker has its own pipe, so one worker's death costs only its own file.

This module is the supervisor (the service's side). The worker's side is
`decoder_worker`, the pixels' way back `frame_transport`, and what both hand
the scanner (`Analysis`, `Decoder`, `InProcessDecoder`) is `analysis`; their
names are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import multiprocessing
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing import reduction
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from warden.errors import DecodeTimeout, MediaError, ScanError, ScanTimeout, TooManyPixels
from warden.media import decode as decoding
from warden.media import headers
from warden.media.analysis import Analysis, Decoder, InProcessDecoder, analyse, hash_frames
from warden.media.decoder_worker import serve
from warden.media.frame_transport import SHARED_BYTES, take_frames

__all__ = [
    "Analysis",
    "Decoder",
    "DecoderPool",
    "InProcessDecoder",
    "analyse",
    "hash_frames",
]

log = logging.getLogger(__name__)

#: Modules the fork server imports once, so every worker forked from it starts warm.
PRELOAD = ["warden.media.decoder_worker", "pillow_heif", "pillow_jxl", "numpy", "pdqhash"]
#: Pixel passes (pixels x JPEG scans) above which a file is "heavy": ~64 MP, a
#: fifth of a second or more of decoding.
HEAVY_WORK = 64_000_000
#: Where the header is not read (TIFF), bytes above which a file is heavy.
HEAVY_BYTES = 4 * 1024 * 1024
#: How long a new worker may take to warm up before its first file is given up on.
START_TIMEOUT_S = 60.0


# -- the service side -----------------------------------------------------------

_MEDIA_ERRORS: dict[str, type[MediaError]] = {}


def _media_error(code: str, message: str) -> MediaError:
    if not _MEDIA_ERRORS:
        stack: list[type[MediaError]] = [MediaError]
        while stack:
            cls = stack.pop()
            _MEDIA_ERRORS.setdefault(cls.code, cls)
            stack.extend(cls.__subclasses__())
    return _MEDIA_ERRORS.get(code, MediaError)(message, code=code)


class _Worker:
    """One worker process and the service's end of its pipe."""

    def __init__(self, ctx: BaseContext, memory_mb: int) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=serve, args=(child, memory_mb), name="warden-decoder", daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.shared: mmap.mmap | None = None
        # the pool's close() and a request thread that outlived its deadline may both
        # kill the same worker: the pipe must be closed once (a second os.close of
        # its number is EBADF, or worse, closes a descriptor reused since)
        self._kill_lock = threading.Lock()
        self._killed = False

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            raise ScanError(f"the decoder process did not start within {timeout:g} s")
        message = self._receive()
        if message[0] != "ready":
            raise ScanError(f"the decoder process could not start: {message[1]}")
        try:
            fd = reduction.recv_handle(self.conn)
        except (EOFError, OSError, RuntimeError) as exc:
            raise self._died(f"did not share its memory ({exc})") from exc
        try:
            self.shared = mmap.mmap(fd, min(os.fstat(fd).st_size, SHARED_BYTES))
        finally:
            os.close(fd)
        self.ready = True

    def call(self, data: bytes, limits: decoding.DecodeLimits) -> tuple[Any, ...]:
        """Send one file and wait for the answer, at most `limits.timeout_s`."""
        try:
            if self.shared is not None and len(data) <= len(self.shared):
                self.shared[: len(data)] = data  # the worker is idle: its memory is ours
                self.conn.send((len(data), limits))
            else:
                self.conn.send((data, limits))
        except (OSError, ValueError) as exc:  # ValueError: the pool closed its memory
            raise self._died(f"could not be given the file ({exc})") from exc
        if not self.conn.poll(limits.timeout_s):
            self.kill()
            raise DecodeTimeout(
                f"decoding took longer than {limits.timeout_s:g} s; the decoder was stopped"
            )
        return self._receive()

    def _receive(self) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died("stopped without answering") from exc
        return message

    def _died(self, what: str) -> MediaError | ScanError:
        self.process.join(1.0)
        code = self.process.exitcode
        if code == -signal.SIGXCPU:
            return DecodeTimeout(
                "decoding used more CPU time than allowed; the decoder was stopped"
            )
        if code is not None and code < 0:
            what = f"{what}: killed by {signal.Signals(-code).name}"
        elif code is not None:
            what = f"{what}: exit status {code}"
        return ScanError(f"the decoder process {what}")

    def kill(self) -> None:
        with self._kill_lock:
            if self._killed:
                return
            self._killed = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5.0)
        self.conn.close()
        if self.shared is not None:
            with contextlib.suppress(BufferError):
                self.shared.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
            self.process.join(1.0)
        self.kill()


@functools.cache
def _forget_forkserver_in_forked_children() -> None:
    """A process forked from this one (a `ProcessPoolExecutor` worker of `warden
    rescan`) inherits multiprocessing's record of our fork server, which is not its
    child: its first worker would fail (`waitpid`: no child processes). Such a
    child forgets the record and starts its own server."""

    def forget() -> None:
        from multiprocessing import forkserver

        server = getattr(forkserver, "_forkserver", None)
        alive = getattr(server, "_forkserver_alive_fd", None)
        for name in ("_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid"):
            if server is not None and hasattr(server, name):
                setattr(server, name, None)
        if alive is not None:
            with contextlib.suppress(OSError):
                os.close(alive)

    os.register_at_fork(after_in_child=forget)


def _shutdown(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


class DecoderPool:
    """`workers` decoder processes; `run` borrows one, and replaces it when it dies
    or overruns. Thread-safe: the service's scan threads share one pool.

    Large files (more than `heavy_work` pixel passes by their header, or a TIFF
    over `heavy_bytes`) may hold at most `workers - 1` workers at once: a storm
    of files as costly as the limits allow then slows large files, while
    ordinary uploads keep a worker of their own.
    """

    def __init__(
        self,
        workers: int,
        *,
        memory_mb: int,
        method: str = "forkserver",
        heavy_work: int = HEAVY_WORK,
        heavy_bytes: int = HEAVY_BYTES,
    ) -> None:
        self.size = workers
        self.memory_mb = memory_mb
        self.method = method
        self.heavy_work = heavy_work
        self.heavy_bytes = heavy_bytes
        self.replaced = 0  # workers killed or lost and replaced since start
        self._heavy = threading.BoundedSemaphore(max(workers - 1, 1))
        self._generation = 0  # bumped by close(): callers still waiting give up
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._ctx: BaseContext | None = None
        self._finalizer = weakref.finalize(self, _shutdown, self._all)

    def _context(self) -> BaseContext:
        if self._ctx is None:
            ctx = multiprocessing.get_context(self.method)
            if self.method == "forkserver":
                ctx.set_forkserver_preload(PRELOAD)
                _forget_forkserver_in_forked_children()
            self._ctx = ctx
        return self._ctx

    def start(self) -> None:
        """Start every worker and wait until each has warmed up (idempotent)."""
        with self._lock:
            missing = self.size - len(self._all)
            started = [self._spawn() for _ in range(missing)]
        for worker in started:
            worker.wait_ready(START_TIMEOUT_S)
            self._idle.put(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context(), self.memory_mb)
        self._all.add(worker)
        return worker

    def pids(self) -> list[int]:
        """The live workers' process ids (for health checks and tests)."""
        return [w.process.pid for w in list(self._all) if w.process.pid is not None]

    def run(
        self, data: bytes, limits: decoding.DecodeLimits, *, give_up_at: float | None = None
    ) -> Analysis:
        """Decode and hash in a worker; a `MediaError` refuses the file, a `ScanError`
        says no decision could be reached (the worker died for another reason, or
        no worker was free by `give_up_at`, a `time.monotonic()` instant: by then
        nobody waits for the answer, and decoding it would only delay others)."""
        # refusals from the bytes take no worker
        _, work = decoding.preflight_work(data, limits)
        if len(self._all) < self.size:
            self.start()
        if not self._heavy_work(data, work):
            return self._run(data, limits, give_up_at)
        self._wait(lambda t: self._heavy.acquire(timeout=t), give_up_at)
        try:
            return self._run(data, limits, give_up_at)
        finally:
            self._heavy.release()

    def _wait(self, attempt: Callable[[float], bool], give_up_at: float | None) -> None:
        """Retry `attempt(timeout)` until it succeeds, the pool closes or time runs out."""
        generation = self._generation
        while not attempt(
            0.25 if give_up_at is None else max(0.0, min(0.25, give_up_at - time.monotonic()))
        ):
            if generation != self._generation:
                raise ScanError("the decoder pool was closed")
            if give_up_at is not None and time.monotonic() >= give_up_at:
                raise ScanTimeout("no decoder process was free before the deadline")

    def is_heavy(self, data: bytes) -> bool:
        """Whether this file is one of the large ones, which share `workers - 1` workers
        (from its header: callers may queue large files apart, as the media gate does)."""
        try:
            fmt = decoding.sniff(data)
        except MediaError:
            return False  # refused from its bytes at once
        return self._heavy_format(data, fmt)

    def _heavy_format(self, data: bytes, fmt: decoding.Format) -> bool:
        return self._heavy_work(data, headers.header_work(data, fmt.name))

    def _heavy_work(self, data: bytes, work: int | None) -> bool:
        return len(data) > self.heavy_bytes if work is None else work > self.heavy_work

    def _run(
        self, data: bytes, limits: decoding.DecodeLimits, give_up_at: float | None
    ) -> Analysis:
        worker = self._checkout(give_up_at)
        healthy = False
        try:
            worker.wait_ready(START_TIMEOUT_S)
            answer = worker.call(data, limits)
            kind = answer[0]
            healthy = kind in ("ok", "shared", "media", "error")
            if kind == "shared" and worker.shared is not None:
                return take_frames(answer[1], answer[2], answer[3], worker.shared)
            if kind == "ok":
                media: decoding.DecodedMedia = answer[1]
                return hash_frames(media, answer[2])
            if kind == "media":
                raise _media_error(answer[1], answer[2])
            if kind == "memory":
                raise TooManyPixels(answer[1])
            raise ScanError(f"the decoder failed: {answer[1]}")
        finally:
            if healthy:
                self._give_back(worker)
            else:
                self._replace(worker)

    def _checkout(self, give_up_at: float | None) -> _Worker:
        """An idle worker that is alive: one lost while idle (the OOM killer, an
        admin's kill) is replaced here and costs no file."""
        got: list[_Worker] = []

        def take(timeout: float) -> bool:
            try:
                got.append(self._idle.get(timeout=max(timeout, 0.0)))
            except queue.Empty:
                return False
            return True

        while True:
            self._wait(take, give_up_at)
            worker = got.pop()
            if worker.process.is_alive():
                return worker
            self._replace(worker)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._idle.put(worker)
                return
        worker.stop()  # the pool was closed while this worker decoded

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker not in self._all:
                return  # the pool was closed meanwhile
            self._all.discard(worker)
            self.replaced += 1
            replacement = self._spawn()
        self._idle.put(replacement)  # warms up on its own; the next caller waits for it
        log.warning(
            "decoder process %s replaced by %s", worker.process.pid, replacement.process.pid
        )

    def close(self) -> None:
        """Stop every worker. A later `run` starts them again."""
        with self._lock:
            workers = list(self._all)
            self._all.clear()
            self._generation += 1
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        for worker in workers:
            worker.stop()
