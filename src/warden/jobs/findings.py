"""What `warden doctor` reports: one finding per check, with the fix for a problem."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OK, PROBLEM, INFO = "ok", "problem", "info"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | problem | info
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
