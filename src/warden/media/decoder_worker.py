"""A decoder process's life: warm up, cap its own memory, then decode until told to stop.

Runs in the worker processes `decoder_pool` starts from the fork server; the
service never calls these functions itself. Limits set by the operating system
bound each worker: the address space (`RLIMIT_AS`, what the worker had after
warming up plus `memory_mb`) and the CPU time (`RLIMIT_CPU`, re-armed before
each file). Answers go back through the pipe as small tuples, the pixels
through shared memory (`frame_transport`):

- `("shared", info, layout, decode_ms)`: the frames lie in the shared memory;
- `("ok", media, decode_ms)`: the frames, pickled (too large for the memory);
- `("media", code, message)`: a refusal (`MediaError`);
- `("memory", message)`: the address-space cap was hit; the worker then exits;
- `("error", message)`: any other failure, this file's alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import mmap
import os
import resource
import signal
import time
from multiprocessing import reduction
from multiprocessing.connection import Connection

from warden.errors import MediaError
from warden.media import decode as decoding
from warden.media.frame_transport import SHARED_BYTES, put_frames

_MIB = 1024 * 1024
#: Free memory a worker's malloc may keep between files rather than return (glibc).
KEEP_HEAP_BYTES = 64 * _MIB
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _vsize() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def arm_cpu(seconds: float) -> None:
    """Let this worker use `seconds` more CPU time from now; SIGXCPU ends it after."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(spent + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _keep_heap() -> None:
    """Let malloc keep freed memory for the next file instead of handing it back to
    the kernel after each one (~300 page faults a file, a third of the decoding
    time). The address-space cap is the same: memory kept is memory counted."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, KEEP_HEAP_BYTES // 2)
        libc.mallopt(_M_TRIM_THRESHOLD, KEEP_HEAP_BYTES)


def _warm_up() -> None:
    """Load every plugin and decode once, so the first real file is fast. No PDQ:
    the service hashes the frames straight from the shared memory
    (`frame_transport.take_frames`), so a worker never loads the hasher's machine code."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, "JPEG")
    decoding.decode(buf.getvalue(), decoding.DecodeLimits())


def serve(conn: Connection, memory_mb: int) -> None:
    """A worker's life: warm up, cap the address space, then decode until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's to handle
    _keep_heap()
    try:
        _warm_up()
        # mapped before the cap, so it counts in the worker's own size, not in memory_mb
        shared_fd = os.memfd_create("warden-frames")
        os.ftruncate(shared_fd, SHARED_BYTES)
        shared = mmap.mmap(shared_fd, SHARED_BYTES)
        limit = _vsize() + memory_mb * _MIB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception as exc:  # a worker that cannot warm up says why and stops
        conn.send(("dead", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    reduction.send_handle(conn, shared_fd, os.getppid())
    os.close(shared_fd)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the service is gone
        if job is None:
            return
        data, limits = job
        if isinstance(data, int):  # the file lies in the shared memory, `data` bytes long
            data = bytes(shared[:data])
        arm_cpu(limits.timeout_s + 1.0)
        try:
            t0 = time.perf_counter()
            # the pool ran `preflight` on these bytes and limits before sending them
            media = decoding.decode(data, limits, preflighted=True)
            decode_ms = (time.perf_counter() - t0) * 1000.0
            layout = put_frames(media, shared)
            if layout is None:
                conn.send(("ok", media, decode_ms))
            else:
                conn.send(("shared", media.info, layout, decode_ms))
        except MediaError as exc:
            conn.send(("media", exc.code, exc.message))
        except MemoryError:
            # the heap may be in pieces now: answer, then let the pool replace us
            conn.send(("memory", f"decoding needs more than the decoder's {memory_mb} MiB"))
            return
        except Exception as exc:  # any other failure is this file's, never the service's
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
