"""Contract breaks found by fuzzing whose fix has not landed yet.

Each entry names the regression file that reproduces it and the exception
(type, and the source file that raises it) it produces today. The replay test
marks that file `xfail(strict=True)`, so the day the fix lands the test fails
until the entry is removed, and the short fuzz run in the test suite tolerates
that exception (and only that one) so that it keeps looking for new ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pending:
    regression: str  # "<target>/<file name>" under tests/fuzz/regressions/
    exception: str  # the type name raised today
    raised_in: str  # the file name (no folder) of the innermost frame raising it; "" anywhere
    why: str  # what happens, where in Warden, and the fix


PENDING: tuple[Pending, ...] = ()


def tolerated(target: str, exc: BaseException, raised_in: str) -> bool:
    """Whether `exc`, raised in `raised_in`, is a known break of `target` awaiting its fix."""
    return any(
        p.regression.startswith(f"{target}/")
        and p.exception == type(exc).__name__
        and p.raised_in in ("", raised_in)
        for p in PENDING
    )
