"""The states of a purge, one set for both purge paths and both of their ledgers.

`warden purge federated` and `warden rescan --purge` record every alias (or
store key) they act on in a ledger file, so a run killed at any point resumes
without purging anything twice or skipping anything. Both use these states:

    planned ──▶ pending ──▶ purged | gone | failed
       └──────▶ skipped | gone | failed    (settled by a check before any purge)

`pending` is written before the purge call and is the only state a crash can
leave behind mid-alias: it is tried again on resume (pict-rs answers "already
gone" when the first try went through). `failed` is tried again on request.
"""

from __future__ import annotations

from enum import StrEnum


class PurgeState(StrEnum):
    PLANNED = "planned"  # in the plan, not acted on yet
    PENDING = "pending"  # the purge call is under way (or was, when a run was killed)
    PURGED = "purged"  # pict-rs removed the file with every alias of it
    GONE = "gone"  # pict-rs no longer had it: purged earlier, or removed since planning
    SKIPPED = "skipped"  # kept: a local upload is, or shares, the file
    FAILED = "failed"  # pict-rs answered an error; the reason is kept
