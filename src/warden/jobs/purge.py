"""`warden purge federated`: remove every image that federated in, never a local upload.

The unit of a purge is a pict-rs FILE: pict-rs stores identical bytes once,
under every alias they were uploaded or fetched as, and `/internal/purge`
removes the file with all its aliases (see `warden.adapters.pictrs`). So a file
is kept when ANY of its aliases is local: a local upload by the upload table
of the detected Lemmy schema, or referenced by any local content
(`LemmyDatabase.catalog`). Otherwise it is purged when there is evidence that
it federated in (a thumbnail Lemmy cached for a federated post), or, on pict-rs
0.5 which lists every stored file, when nothing references it and it was
stored after Lemmy began recording every local upload (the `image_upload`
migration's run time): such a file cannot be a local upload. Files stored
before that, which nothing references, are of unknown origin (an old local
upload would look the same): they are kept and counted, never guessed at.

pict-rs 0.4 cannot list its storage: the plan then holds only what Lemmy's
database shows to be federated, and says so.

Run: for each planned alias, ask pict-rs for all aliases of its file (none:
gone), keep it if any is local (checked again against the upload table, so an
upload made mid-run is safe), and otherwise purge it through the loop both
purge paths share (`warden.jobs.purge_loop`: pending, rate limit, purged or
gone or failed); resumable from the ledger after a crash (see `PurgeLedger`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field

from warden.adapters.lemmy_db import LemmyDatabase, MediaCatalog
from warden.adapters.pictrs import PictrsAdmin, StoredFile
from warden.domain.purge import PurgeState
from warden.errors import HashListingUnavailable
from warden.jobs.purge_loop import PurgeReport, RateLimiter, Settled, purge_each
from warden.store.purge_ledger import PurgeLedger

__all__ = ["PurgePlan", "PurgeReport", "RateLimiter", "classify_files", "plan_purge", "run_purge"]


@dataclass
class PurgePlan:
    candidates: int
    local_skipped: int
    new: int
    unattributed: int = 0
    listed: int | None = None  # files pict-rs listed; None on pict-rs 0.4
    schema: str = ""
    notes: list[str] = field(default_factory=list)
    protected: set[str] = field(default_factory=set)  # for `run_purge`, read with the plan


def classify_files(
    catalog: MediaCatalog, files: Iterable[StoredFile], *, unreferenced: bool = True
) -> tuple[dict[str, str], int, int]:
    """(alias to purge -> why, files kept as local, files kept as of unknown origin).

    `unreferenced=False` keeps every file without federated evidence."""
    protected = catalog.protected
    since = catalog.schema.uploads_recorded_since if unreferenced else None
    plan: dict[str, str] = {}
    local = unknown = 0
    for stored in files:
        if not stored.aliases:
            continue  # nothing to purge it by
        if any(a in protected for a in stored.aliases):
            local += 1
            continue
        evidence = next((a for a in stored.aliases if a in catalog.cached_thumbnails), None)
        alias = evidence or stored.aliases[0]
        if evidence is not None:
            plan[alias] = catalog.cached_thumbnails[evidence]
        elif since is not None and stored.created_at is not None and stored.created_at >= since:
            where = catalog.remote_refs.get(alias)
            plan[alias] = f"stored {stored.created_at:%Y-%m-%d}, no local upload" + (
                f"; {where}" if where else ""
            )
        else:
            unknown += 1
    return plan, local, unknown


def plan_purge(
    lemmy: LemmyDatabase,
    ledger: PurgeLedger,
    local_hosts: list[str],
    pictrs: PictrsAdmin,
    *,
    unreferenced: bool = True,
) -> PurgePlan:
    """Make the ledger's planned aliases this plan (a dry run's plan never outlives its options).

    `unreferenced=False` leaves out files nothing in Lemmy references (kept, counted)."""
    catalog = lemmy.catalog(local_hosts)
    notes: list[str] = []
    listed: int | None = None
    counted = [0]

    def listing() -> Iterator[StoredFile]:  # streamed: millions of files stay out of memory
        for stored in pictrs.stored_files():
            counted[0] += 1
            yield stored

    try:
        plan, local, unknown = classify_files(catalog, listing(), unreferenced=unreferenced)
        listed = counted[0]
    except HashListingUnavailable as exc:
        notes.append(exc.message)
        protected = catalog.protected
        plan = {a: s for a, s in catalog.cached_thumbnails.items() if a not in protected}
        local = len(protected)
        unknown = len({a for a in catalog.remote_refs if a not in protected and a not in plan})
    if unreferenced and catalog.schema.uploads_recorded_since is None:
        notes.append(
            "Lemmy's migration history is unreadable: unreferenced files are kept as of unknown origin"
        )
    new, dropped = ledger.replan(sorted(plan.items()))
    if dropped:
        notes.append(f"{dropped:,} aliases planned earlier are no longer federated by this plan")
    return PurgePlan(
        candidates=len(plan),
        local_skipped=local,
        new=new,
        unattributed=unknown,
        listed=listed,
        schema=catalog.schema.flavour,
        notes=notes,
        protected=catalog.protected,
    )


def run_purge(
    lemmy: LemmyDatabase,
    pictrs: PictrsAdmin,
    ledger: PurgeLedger,
    *,
    rate: float,
    protected: Collection[str] | None = None,
    on_step: Callable[[str, str], None] = lambda alias, result: None,
    max_errors: int = 20,
) -> PurgeReport:
    """Purge every planned or interrupted alias in the ledger.

    `protected` is the catalog's local set, read afresh for this run; every
    sibling alias is also checked live against the upload table.
    """
    keep = set(protected) if protected is not None else lemmy.catalog([]).protected

    def local_or_gone(alias: str) -> Settled | tuple[str, ...]:
        siblings = pictrs.aliases(alias)
        if not siblings:  # purged before an interruption, or removed since planning
            return Settled(PurgeState.GONE, "already gone")
        local = next((a for a in siblings if a in keep or lemmy.is_local(a)), None)
        if local is not None:  # by construction: never a local upload, even one made mid-run
            why = "local upload" if local == alias else f"same file as local {local}"
            return Settled(PurgeState.SKIPPED, why)
        return siblings

    report = PurgeReport()
    purge_each(
        ((alias, alias) for alias, _state in ledger.todo()),
        pictrs,
        ledger,
        report,
        rate=rate,
        max_errors=max_errors,
        check=local_or_gone,
        on_step=on_step,
    )
    return report
