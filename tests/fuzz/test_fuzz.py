"""Fuzzing in the test suite: every regression file replayed, and a short run per target.

Regression files live in `regressions/<target>/` and are named
`<expected>--<what it is>.<ext>`, where `<expected>` is the outcome the target
must report: a refusal code (`corrupt_media`, `bad_rules`, ...), `accept`,
`ok`, or `media_error` for "any named media refusal" where the exact code is
the decoder's choice. Media files are replayed in a separate process under a
2 GiB address-space limit and a deadline, since a regression may be a bomb.

The short run drives each target with atheris for a fixed number of inputs
from a fixed seed (the long run is `make fuzz`). libFuzzer over instrumented
Python is not bit-for-bit repeatable even so, so a failure prints the input
and its traceback: make it a regression file. Without atheris (the dev extra
installs it on x86-64 Linux only) a small seeded mutator stands in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.fuzz import seeds
from tests.fuzz.pending import PENDING
from tests.fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REGRESSIONS = HERE / "regressions"
PROCESS_TARGETS = {"decoder"}  # replayed out of process: a regression may be a bomb
#: a media replay's budget per file: decode_timeout_s + 1 s, the bound issue 12 sets on every
#: bomb (the child's start-up is allowed on top; timings themselves belong in bench/)
DECODE_DEADLINE_S = 5.0 + 1.0
#: inputs per target in the short run: the decoder costs ~10-100 ms an input, the rest ~50 µs
SHORT_RUNS = {"decoder": 2_000, "sniff": 20_000}
DEFAULT_RUNS = 20_000
ATHERIS = importlib.util.find_spec("atheris") is not None


def _regressions() -> list[object]:
    pending = {p.regression: p for p in PENDING}
    cases: list[object] = []
    for path in sorted(REGRESSIONS.glob("*/*")):
        key = f"{path.parent.name}/{path.name}"
        marks = []
        if key in pending:
            marks.append(pytest.mark.xfail(strict=True, reason=pending[key].why))
        cases.append(pytest.param(path.parent.name, path, id=key, marks=marks))
    return cases


#: libFuzzer's `-rss_limit_mb` reads the process's peak RSS (`getrusage` ru_maxrss),
#: and Linux carries a parent's peak into a child it forks, across `execve` too: a
#: harness started straight from this test process began at the whole test run's
#: ~2.2 GB (every earlier test's models, indexes and pictures) and was "out of
#: memory" before its first input. A child started by a small middle process starts
#: at its own RSS (measured: 2,310 MB direct, 10 MB through the middle process).
FRESH_PEAK = [
    sys.executable,
    "-c",
    "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONWARNINGS": "ignore"}


def replay(target: str, path: Path) -> dict[str, str]:
    """The target's verdict on one file, out of process for the media targets."""
    if target not in PROCESS_TARGETS:
        from tests.fuzz.replay import replay as in_process

        return in_process(target, path.read_bytes())
    return replay_out_of_process(target, [path])[0]


def replay_out_of_process(target: str, paths: list[Path]) -> list[dict[str, str]]:
    """Verdicts on files decoded in one child process, under `replay`'s limits."""
    command = [sys.executable, "-m", "tests.fuzz.replay", target, *map(str, paths)]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=DECODE_DEADLINE_S * len(paths) + 10,  # + interpreter and Pillow start-up
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [{"escaped": f"no answer within {DECODE_DEADLINE_S:g} s a file"}] * len(paths)
    if done.returncode != 0:
        died = f"replay died (exit {done.returncode}): {done.stderr[-2000:]}"
        return [{"escaped": died}] * len(paths)
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


@pytest.mark.parametrize(("target", "path"), _regressions())
def test_regression_replays(target: str, path: Path) -> None:
    expected = path.name.split("--", 1)[0]
    result = replay(target, path)
    assert "escaped" not in result, f"{path.name}: {result}"
    outcome = result["outcome"]
    if expected == "media_error":
        assert outcome not in ("accept", "memory_error"), f"{path.name}: {outcome}"
    elif expected != "ok":
        assert outcome == expected, f"{path.name}: expected {expected}, got {outcome}"


def test_regression_files_are_named_and_pending_entries_exist() -> None:
    """A regression file says what it must produce; a pending entry names a real file."""
    files = sorted(REGRESSIONS.glob("*/*"))
    assert files, "no regression files"
    for path in files:
        assert path.parent.name in TARGETS, f"{path}: no such target"
        expected, sep, what = path.name.partition("--")
        assert sep and what and expected, f"{path.name}: name it <expected>--<what it is>"
    for entry in PENDING:
        assert (REGRESSIONS / entry.regression).is_file(), entry.regression


def test_seeds_pass_their_targets() -> None:
    """Every seed is a well-formed input that its target judges without breaking."""
    for target, make in seeds.SEEDS.items():
        if target in PROCESS_TARGETS:
            continue  # the decoder's seeds are the sniffer's: run below, out of process
        for data in make().values():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                TARGETS[target](data)
    images = seeds.image_seeds()
    accepted = {n for n, d in images.items() if TARGETS["sniff"](d) in seeds_formats()}
    assert {"baseline.jpg", "rgb.png", "animated.gif", "lossy.webp", "rgb.heic"} <= accepted


def seeds_formats() -> set[str]:
    from warden.media.decode import FORMATS

    return set(FORMATS)


def test_image_seeds_decode(tmp_path: Path) -> None:
    """The decoder accepts every image seed (else the corpus starts from refusals only)."""
    paths = []
    for name, data in seeds.image_seeds().items():
        if TARGETS["sniff"](data) in seeds_formats():
            paths.append(tmp_path / name)
            paths[-1].write_bytes(data)
    verdicts = replay_out_of_process("decoder", paths)
    assert len(verdicts) == len(paths)
    refused = {
        p.name: v for p, v in zip(paths, verdicts, strict=True) if v != {"outcome": "accept"}
    }
    assert not refused


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One to four byte-level mutations: flip, overwrite, insert, delete, splice."""
    buf = bytearray(data or b"\x00")
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[at % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[at % len(buf)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and len(buf) > 1:
            del buf[at : at + rng.randint(1, 8)]
        else:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[at:at] = other[start : start + rng.randint(1, 64)]
    return bytes(buf)


def _fallback_run(target: str, runs: int) -> None:
    """Seeded mutation without coverage feedback, where atheris cannot be installed."""
    rng = random.Random(1)
    pool = list(seeds.SEEDS[target]().values())
    pool += [p.read_bytes() for p in sorted((REGRESSIONS / target).glob("*"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(runs):
            data = _mutate(rng, rng.choice(pool), pool)
            try:
                TARGETS[target](data)
            except Exception as exc:
                raise AssertionError(f"{target} broke on {data!r:.400}") from exc


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    """A fixed-seed run of each target finds nothing beyond the breaks awaiting a fix."""
    runs = SHORT_RUNS.get(target, DEFAULT_RUNS)
    if not ATHERIS:
        if target in PROCESS_TARGETS:
            pytest.skip("no atheris here: mutated media is decoded only under libFuzzer's limits")
        _fallback_run(target, runs)
        return
    corpus = tmp_path / "corpus"
    seeds.write(target, corpus)
    command = [
        *FRESH_PEAK,
        sys.executable,
        "-m",
        "tests.fuzz.harness",
        target,
        "--tolerate-pending",
        f"-runs={runs}",
        "-seed=1",
        "-rss_limit_mb=2048",
        f"-timeout={int(DECODE_DEADLINE_S) + 4}",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    crashes = {p.name: p.read_bytes()[:300] for p in tmp_path.iterdir() if p.is_file()}
    found = done.stderr.find("=== Uncaught Python exception")
    report = done.stderr[found : found + 4000] if found >= 0 else done.stderr[-4000:]
    assert done.returncode == 0, (
        f"{target}: libFuzzer exit {done.returncode}, inputs {crashes}; add the input to "
        f"tests/fuzz/regressions/{target}/ and fix it\n{report}"
    )
    assert f"Done {runs} runs" in done.stderr, done.stderr[-2000:]
