"""`warden decisions list|show|tail`: the decisions log over SSH, for an admin on a bad night.

Filters (every command that lists): `--outcome`, `--source`, `--reason` (a machine
code), `--account` (the attributed Lemmy account, or an `/api/v1/scan` token's
uploader), `--hash` (a SHA-256 or a prefix of at least 8 hex digits), `--since`
and `--until` (`30m`, `2h`, `7d` ago, or an ISO 8601 time). One line per
decision, or one JSON object per line with `--json` for scripts. `tail` prints
the latest matches, then follows the log as new decisions are written.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from warden.cli.context import database, settings_from
from warden.errors import InputError, NotFound
from warden.membership.requirements import parse_duration
from warden.services.uploads import lemmy_recorded_uploader
from warden.store.decision_search import DecisionFilter, search
from warden.store.decisions import DecisionLog, DecisionRecord

decisions_app = typer.Typer(
    help="Read the decisions log: list, show one, follow it live.",
    no_args_is_help=True,
)

_HEX = re.compile(r"[0-9a-fA-F]{8,64}")
_AGO = re.compile(r"[0-9]+[smhdw]")
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9]{2}:?[0-9]{2})?")
_OUTCOMES = ("accept", "review", "reject")

Outcome = Annotated[
    str | None, typer.Option("--outcome", help="accept, review or reject.", show_default=False)
]
Source = Annotated[
    str | None,
    typer.Option("--source", help="upload, remote, ingest, api, cli, rescan…", show_default=False),
]
ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help="A reason code, e.g. label_reject.", show_default=False),
]
AccountOpt = Annotated[
    str | None, typer.Option("--account", help="A Lemmy account name.", show_default=False)
]
HashOpt = Annotated[
    str | None,
    typer.Option("--hash", help="A SHA-256, or its first 8+ hex digits.", show_default=False),
]
Since = Annotated[
    str | None,
    typer.Option("--since", help="From: 30m, 2h, 7d ago, or an ISO time.", show_default=False),
]
Until = Annotated[
    str | None,
    typer.Option("--until", help="Before: 30m, 2h, 7d ago, or an ISO time.", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def when(text: str | None, option: str) -> datetime | None:
    """`--since`/`--until`: a duration ago (`2h`) or an ISO 8601 time (UTC if bare).
    An impossible date (month 13) is a ValueError: the root handler says so, exit 2."""
    if text is None:
        return None
    text = text.strip()
    if _AGO.fullmatch(text):
        return datetime.now(UTC) - parse_duration(text)
    if not _ISO.fullmatch(text):
        raise InputError(
            f"{option} {text!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time"
        )
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def build_filter(
    outcome: str | None,
    source: str | None,
    reason: str | None,
    account: str | None,
    sha256: str | None,
    since: str | None,
    until: str | None,
) -> DecisionFilter:
    """The filter the options name; a clear InputError for any that cannot be used."""
    if outcome is not None and outcome not in _OUTCOMES:
        raise InputError(f"--outcome is one of {', '.join(_OUTCOMES)}, not {outcome!r}")
    if sha256 is not None and not _HEX.fullmatch(sha256.strip()):
        raise InputError("--hash takes a SHA-256 or its first 8 to 64 hex digits")
    if account is not None:
        account = account.strip().lstrip("@") or None
    return DecisionFilter(
        decision=outcome,
        source=source,
        reason=reason,
        account=account,
        sha256=sha256.strip() if sha256 else None,
        since=when(since, "--since"),
        until=when(until, "--until"),
    )


def as_dict(record: DecisionRecord) -> dict[str, Any]:
    """One decision as the JSON `--json` prints."""
    v = record.verdict
    return {
        "id": record.id,
        "time": record.created_at.isoformat(),
        "source": record.source,
        "decision": v.decision.value,
        "reasons": [r.code for r in v.reasons],
        "messages": [r.message for r in v.reasons],
        "sha256": v.sha256 or None,
        "pdq": v.pdq,
        "size": v.size,
        "labels": dict(v.labels),
        "matches": [dict(m) for m in v.matches],
        "account": record.account or record.uploader,
        "account_id": record.account_id,
        "client_address": record.client_address,
        "alias": record.alias,
        "linked_decision_id": record.linked_decision_id,
        "evidence_id": record.evidence_id,
        "config_version": record.config_version,
    }


def line(record: DecisionRecord) -> str:
    """One decision on one line: id, time, source, outcome, first reason, who, hash."""
    v = record.verdict
    first = v.reasons[0].code if v.reasons else "-"
    who = record.account or record.uploader or "-"
    link = f" (answered from #{record.linked_decision_id})" if record.linked_decision_id else ""
    return (
        f"{record.id}\t{record.created_at:%Y-%m-%d %H:%M:%S}\t{record.source}\t"
        f"{v.decision.value}\t{first}\t{who}\t{record.client_address or '-'}\t"
        f"{record.alias or '-'}\t{(v.sha256 or '-')[:16]}{link}"
    )


def _print(records: list[DecisionRecord], as_json: bool) -> None:
    for record in records:
        # plain echo, not the rich console: tabs stay tabs, lines stay whole for scripts
        typer.echo(json.dumps(as_dict(record)) if as_json else line(record))


@decisions_app.command("list")
def list_decisions(
    ctx: typer.Context,
    outcome: Outcome = None,
    source: Source = None,
    reason: ReasonOpt = None,
    account: AccountOpt = None,
    sha256: HashOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most.")] = 50,
    as_json: AsJson = False,
) -> None:
    """Matching decisions, newest first: id, time, source, outcome, first reason,
    account, address, alias, SHA-256 (first 16 digits)."""
    where = build_filter(outcome, source, reason, account, sha256, since, until)
    log = DecisionLog(database(ctx))
    _print(search(log, where, limit=limit), as_json)


@decisions_app.command("show")
def show(
    ctx: typer.Context,
    decision_id: Annotated[int, typer.Argument(help="The decision's id.", min=1)],
    as_json: AsJson = False,
) -> None:
    """Everything about one decision: verdict, reasons, labels, matches, who uploaded
    it, the decision it answered from and those answered from it. When nobody was
    attributed and federated.lemmy_database_url is set, Lemmy's own upload records
    name the uploader after the fact."""
    settings = settings_from(ctx)
    log = DecisionLog(database(ctx))
    record = log.get(decision_id)
    if record is None:
        raise NotFound(f"no decision {decision_id}")
    detail = as_dict(record)
    detail["linked_from"] = [r.id for r in log.linked_to(record.id)]
    if detail["account"] is None:
        origin = log.get(record.linked_decision_id) if record.linked_decision_id else None
        found = lemmy_recorded_uploader(settings, record, origin.alias if origin else None)
        if found is not None:
            person_id, name, alias = found
            detail["lemmy_recorded_uploader"] = {
                "account": name,
                "account_id": person_id,
                "alias": alias,
                "from": "Lemmy's local_image (recorded by Lemmy, not by Warden)",
            }
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return
    for key, value in detail.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        typer.echo(f"{key}: {'-' if value is None else shown}")


@decisions_app.command("tail")
def tail(
    ctx: typer.Context,
    outcome: Outcome = None,
    source: Source = None,
    reason: ReasonOpt = None,
    account: AccountOpt = None,
    sha256: HashOpt = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Show these first.")] = 10,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=60.0, help="Seconds between reads.")
    ] = 1.0,
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", min=1, help="Exit after this many new decisions."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The latest matching decisions, then every new one as it is written (Ctrl-C ends)."""
    where = build_filter(outcome, source, reason, account, sha256, None, None)
    log = DecisionLog(database(ctx))
    latest = search(log, DecisionFilter(), limit=1)
    last = latest[0].id if latest else 0
    _print(list(reversed(search(log, where, limit=lines))) if lines else [], as_json)
    seen = 0
    try:
        while stop_after is None or seen < stop_after:
            fresh = search(log, DecisionFilter(), limit=500, after_id=last, newest_first=False)
            if fresh:
                last = fresh[-1].id
                shown = [r for r in fresh if _matches(where, r)]
                if stop_after is not None:
                    shown = shown[: stop_after - seen]
                _print(shown, as_json)
                seen += len(shown)
                continue
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _matches(where: DecisionFilter, record: DecisionRecord) -> bool:
    """`where` checked on a record already read (tail reads every new row once)."""
    v = record.verdict
    who = {record.account, record.uploader}
    return (
        (where.decision is None or v.decision.value == where.decision)
        and (where.source is None or record.source == where.source)
        and (where.account is None or where.account in who)
        and (where.sha256 is None or v.sha256.startswith(where.sha256.lower()))
        and where.admits(record)
    )
