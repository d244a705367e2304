"""`warden rescan --purge`: purge through pict-rs the stored objects a rescan refused.

pict-rs purges by alias and a store holds identifiers (file paths, object
keys). On pict-rs 0.5 refused keys map to files by content: the rescan ledger
holds each key's SHA-256, and pict-rs's hash of a file begins with the SHA-256
of its stored bytes (see `warden.adapters.pictrs`). pict-rs 0.4 cannot list
its files: then aliases Lemmy knows are turned into identifiers
(`GET /internal/identifier`) until every refused key is found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from warden.adapters.pictrs import PictrsAdmin
from warden.jobs.purge_loop import PurgeReport, purge_each
from warden.store.rescan_ledger import RescanLedger


def _norm(path: str) -> str:
    return path.strip("/")


def _same_object(key: str, identifier: str) -> bool:
    """A store key and a pict-rs identifier name the same object when one is a
    path suffix of the other (the folder given may be pict-rs's root or its files/)."""
    a, b = _norm(key), _norm(identifier)
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


@dataclass
class RescanPurgeReport(PurgeReport):
    """The loop's counts, and how many refused keys were found in pict-rs."""

    refused: int = 0
    mapped: int = 0
    unmapped: int = 0


def purge_refused(
    ledger: RescanLedger,
    pictrs: PictrsAdmin,
    aliases: Iterable[str],
    *,
    rate: float,
    by_sha256: Mapping[str, str] | None = None,
    on_step: Callable[[str, str], None] = lambda key, result: None,
    max_errors: int = 20,
) -> RescanPurgeReport:
    """Purge through pict-rs every stored object the rescan refused (`reject` only:
    `review` stays for a human). Resumable: each purge is recorded in the ledger.

    `by_sha256` (SHA-256 of stored bytes -> an alias of that file, from pict-rs's
    own listing) maps keys by content; `aliases` (walked with identifier calls)
    maps the keys it leaves."""
    report = RescanPurgeReport()
    refused = ledger.refused_unpurged()
    report.refused = len(refused)
    aliasless = [key for key, alias in refused.items() if alias is None]
    if by_sha256:
        for key in list(aliasless):
            row = ledger.row(key) or {}
            found = by_sha256.get(str(row.get("sha256") or "").lower())
            if found:
                ledger.set_alias(key, found)
                aliasless.remove(key)
    by_name: dict[str, list[str]] = {}
    for key in aliasless:
        by_name.setdefault(_norm(key).rsplit("/", 1)[-1], []).append(key)
    for alias in aliases:  # one identifier call per alias, until every refused key is found
        if not by_name:
            break
        identifier = pictrs.identifier(alias)
        if identifier is None:
            continue
        name = _norm(identifier).rsplit("/", 1)[-1]
        for key in list(by_name.get(name, ())):
            if _same_object(key, identifier):
                ledger.set_alias(key, alias)
                by_name[name].remove(key)
        if name in by_name and not by_name[name]:
            del by_name[name]
    report.unmapped = sum(len(v) for v in by_name.values())
    todo = ledger.purge_todo()
    report.mapped = len(todo)
    purge_each(todo, pictrs, ledger, report, rate=rate, max_errors=max_errors, on_step=on_step)
    for key in sorted(k for v in by_name.values() for k in v):
        report.errors.append(f"{key}: no pict-rs alias points at it")
    return report
