"""Replay one input through a fuzz target, in a process of its own with hard limits.

    python -m tests.fuzz.replay TARGET FILE... [--memory-mb N]

Prints one JSON object per file, one a line: `outcome` (the target's word: a refusal code,
`accept`, `ok`, ...) or `escaped` (the exception that broke the contract, as
`Type: message`, with `raised_in` naming the file of the innermost frame).
Media inputs found by the fuzzer may be bombs: replaying them inside the test
process could take the machine's memory, so the test suite runs them here,
under an address-space limit (a refusal that only came from a failed
allocation then reads `memory_error`) and a wall-clock timeout set by the caller.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from tests.fuzz.targets import TARGETS


def replay(target: str, data: bytes) -> dict[str, Any]:
    """The target's outcome for `data`, or the exception that escaped it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in the service: warnings are only logged
            return {"outcome": TARGETS[target](data)}
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return {
            "escaped": f"{type(exc).__name__}: {exc}"[:500],
            "exception": type(exc).__name__,
            "raised_in": Path(frame.filename).name,
            "line": f"{frame.filename}:{frame.lineno}",
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--memory-mb", type=int, default=2048)
    args = parser.parse_args(argv)
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for path in args.files:
        print(json.dumps(replay(args.target, path.read_bytes())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
