"""A real `warden serve` in a subprocess on free loopback ports, for what only the real
listener shows: which address it judges, what it logs, how it treats slow clients."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.nginx import free_port, wait_for_port


@dataclass
class ServedWarden:
    port: int
    data_dir: Path
    log: Path  # stdout and stderr together: uvicorn's access log and Warden's own
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def served_warden(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    *,
    args: tuple[str, ...] = (),
    preexec: Callable[[], None] | None = None,
    wait_ports: tuple[int, ...] = (),
) -> Iterator[ServedWarden]:
    """`warden serve --port <free>` with WARDEN_* `env` on top of a bare environment;
    stopped (SIGTERM, then SIGKILL) whatever happens in the test."""
    port = free_port()
    data_dir = tmp_path / "warden-data"
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")},
        "WARDEN_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    log = tmp_path / "warden-serve.log"
    warden = Path(sys.executable).with_name("warden")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(warden), "serve", "--port", str(port), *args],
            env=full,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,  # only sets a resource limit
        )
    served = ServedWarden(port, data_dir, log, process)
    try:
        for waited in (port, *wait_ports):
            try:
                wait_for_port(waited, timeout_s=90)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n--- warden serve said:\n{served.output()}") from exc
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
