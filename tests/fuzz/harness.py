"""Run one fuzz target under atheris (libFuzzer, coverage-guided).

    python -m tests.fuzz.harness TARGET [libFuzzer flags...] [CORPUS_DIR...]

Warden and the libraries it parses with (Pillow and its plugins for the
media targets) are instrumented, so the fuzzer follows new Python branches.
Without a corpus folder the working corpus is `build/fuzz/corpus/TARGET`,
seeded from `seeds.py`; the target's regression files are always read too,
so every known crash is the first thing tried. A contract break is saved as
`build/fuzz/crashes/TARGET-crash-<sha1>`: move it into
`tests/fuzz/regressions/TARGET/` (with a name that says what it is) so the
test suite replays it from then on. Defaults: 3 GiB RSS limit, 30 s per input
(a slower input is a finding too), 64 KiB inputs for media, 4 KiB otherwise;
any flag given on the command line wins.

`--tolerate-pending` (the test suite's short run) lets through the breaks
listed in `pending.py`, whose fixes have not landed, and stops at any other.
`--keep-going` (exploration, not CI) records each distinct break once, named
after the exception and the line that raised it, and carries on, so one long
run reports every kind of crash rather than stopping at the first. Warnings
are ignored, as in the service, where they are only logged.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FunctionType, ModuleType

import atheris

from tests.fuzz.pending import tolerated
from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
DICTS = Path(__file__).resolve().parent / "dicts"
WORK = ROOT / "build" / "fuzz"

#: the packages whose Python code each target runs through (instrumented for coverage)
INSTRUMENT = {
    "decoder": ("warden", "PIL", "pillow_heif", "pillow_jxl"),
    "sniff": ("warden",),
}
MEDIA = {"decoder", "sniff"}
#: standard-library modules a parser leans on, instrumented too (`instrument_all` would
#: reach them but costs ~50 s at start-up)
STDLIB = {
    "routes": ("urllib.parse", "posixpath"),
    "credentials": ("urllib.parse",),
    "forwarding": ("ipaddress",),
    "rulebook": ("tomllib._parser", "tomllib._re"),
    "hashlist": ("csv",),
}


def _instrumented_imports(target: str) -> None:
    """Import what the target uses under instrumentation, before it first runs."""
    with atheris.instrument_imports(include=list(INSTRUMENT.get(target, ("warden",)))):
        import warden.adapters.hash_exchange
        import warden.adapters.lemmy.credentials
        import warden.adapters.lemmy.forwarding
        import warden.adapters.lemmy.routes
        import warden.media.decode
        import warden.membership.rulebook  # noqa: F401

        if target == "decoder":
            import pillow_heif
            import pillow_jxl  # noqa: F401
            from PIL import (
                BmpImagePlugin,
                GifImagePlugin,
                JpegImagePlugin,
                PngImagePlugin,
                TiffImagePlugin,
                WebPImagePlugin,
            )

            _ = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin)
            _ = (TiffImagePlugin, WebPImagePlugin, pillow_heif)
    for module in STDLIB.get(target, ()):
        _instrument_module(importlib.import_module(module))


def _instrument_module(module: ModuleType) -> None:
    """Instrument the functions and methods of a module imported before the harness
    ran (`instrument_imports` only reaches modules imported inside it)."""
    for value in list(vars(module).values()):
        functions = [value]
        if isinstance(value, type) and value.__module__ == module.__name__:
            functions = [v for v in vars(value).values() if isinstance(v, FunctionType)]
            functions += [v.fget for v in vars(value).values() if isinstance(v, property)]
        for function in functions:
            if isinstance(function, FunctionType) and function.__module__ == module.__name__:
                atheris.instrument_func(function)


def libfuzzer_argv(target: str, args: list[str]) -> list[str]:
    """Default flags, then the caller's (libFuzzer takes the last), then the corpora."""
    from tests.fuzz import seeds  # after instrumentation: it imports Pillow

    flags = [a for a in args if a.startswith("-")]
    dirs = [a for a in args if not a.startswith("-")]
    crashes = WORK / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    defaults = [
        "-rss_limit_mb=3072",
        "-timeout=30",
        f"-max_len={65536 if target in MEDIA else 4096}",
        f"-artifact_prefix={crashes}/{target}-",
    ]
    if not dirs:
        corpus = WORK / "corpus" / target
        seeds.write(target, corpus)
        dirs = [str(corpus)]
    dictionary = DICTS / f"{'media' if target in MEDIA else target}.dict"
    if dictionary.exists():
        defaults.append(f"-dict={dictionary}")
    regressions = REGRESSIONS / target
    if regressions.is_dir():
        dirs.append(str(regressions))
    return [sys.argv[0], *defaults, *flags, *dirs]


def keep_going(target: str, run: Callable[[bytes], str]) -> Callable[[bytes], None]:
    """`run`, recording each new (exception, raising line) once instead of stopping."""
    seen: set[str] = set()
    folder = WORK / "crashes"

    def guarded(data: bytes) -> None:
        try:
            run(data)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}_{frame.lineno}"
            signature = f"{type(exc).__name__}-{where}"
            if signature in seen:
                return
            seen.add(signature)
            name = f"{target}-{signature}-{hashlib.sha1(data).hexdigest()[:12]}"
            (folder / name).write_bytes(data)
            print(f"\n=== new break: {name}: {exc!r:.300}", file=sys.stderr, flush=True)

    return guarded


def tolerate_pending(target: str, run: Callable[[bytes], str]) -> Callable[[bytes], None]:
    """`run`, letting through only the breaks listed in `pending.py` (fix not landed)."""

    def guarded(data: bytes) -> None:
        try:
            run(data)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            if not tolerated(target, exc, Path(frame.filename).name):
                raise

    return guarded


def _quiet(run: Callable[[bytes], str]) -> Callable[[bytes], None]:
    """The target without its outcome word (libFuzzer reads a return value as advice)."""

    def call(data: bytes) -> None:
        run(data)

    return call


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in TARGETS:
        print(f"usage: python -m tests.fuzz.harness {{{','.join(TARGETS)}}} [flags] [dirs]")
        raise SystemExit(2)
    options = {"--keep-going", "--tolerate-pending"}
    target, args = argv[0], [a for a in argv[1:] if a not in options]
    warnings.simplefilter("ignore")
    _instrumented_imports(target)
    target_run = TARGETS[target]
    run = _quiet(target_run)
    if "--keep-going" in argv:
        run = keep_going(target, target_run)
    elif "--tolerate-pending" in argv:
        run = tolerate_pending(target, target_run)
    atheris.Setup(libfuzzer_argv(target, args), run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
