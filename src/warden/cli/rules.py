"""`warden rules ...`: check a rules file, and explain a decision for one person.

For admins answering "why can't I upload?": `warden rules check --user NAME
--activity upload_image` looks the person up through Lemmy's API (with
`lemmy.bot_token`) and prints what the rules in force decide and why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from warden.cli.context import on_error, out, settings_from
from warden.config import Settings
from warden.membership.gate import read_rulebook
from warden.membership.requirements import Activity, UserFacts
from warden.membership.rulebook import lint_warnings
from warden.services import build_access_gate
from warden.services.factories import lemmy_client

rules_app = typer.Typer(help="Check account rules and explain decisions.", no_args_is_help=True)


@rules_app.command("lint")
def lint(file: Annotated[Path, typer.Argument(help="Rules file (TOML).")]) -> None:
    """Validate a rules file; exit 0 when usable, 2 with the line of the first problem.

    A usable file can still be weaker than it looks: warnings (e.g. moderators
    trusted while anyone may create a community) are printed, exit status 0."""
    rulebook = read_rulebook(file)
    activities = ", ".join(a.value for a in rulebook.rules.by_activity) or "none"
    out.print(f"{file}: ok (uploads {rulebook.uploads.value}; rules for: {activities})")
    for warning in lint_warnings(rulebook):
        out.print(f"[yellow]warning:[/yellow] {warning}")


@rules_app.command("check")
def check(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", "-u", help="Lemmy user name.")],
    activity: Annotated[Activity, typer.Option("--activity", "-a", help="Activity to judge.")],
) -> None:
    """Explain the decision for one user; exit 0 allowed, 1 refused, 2 when it cannot tell."""
    on_error(ctx, exit_code=2)  # 1 means "refused": a failure is "cannot tell"
    settings = settings_from(ctx)
    gate = build_access_gate(settings)
    facts = asyncio.run(_look_up(settings, user))
    judgement, notes = gate.explain(activity, facts)
    now = gate.clock()
    min_age = gate.rules.current().moderator_community_min_age
    counted = facts.moderating_only_older_than(min_age, now)  # as the rules see the person
    age = now - facts.published
    out.print(
        f"{facts.name} (person {facts.person_id}): account {age.days} days old, "
        f"{facts.comments} comments, {facts.posts} posts, roles {', '.join(sorted(counted.roles))}"
    )
    if min_age is not None and len(counted.moderates) < len(facts.moderates):
        out.print(
            f"  moderates {len(facts.moderates)} communities, "
            f"{len(counted.moderates)} of them older than moderator_community_min_age"
        )
    for note in notes:
        out.print(f"  {note} (this process's count; the running service keeps its own)")
    if judgement.allowed:
        out.print(f"[green]allowed[/green]: {activity.value}")
        raise typer.Exit(0)
    assert judgement.reason is not None
    out.print(f"[red]refused[/red] ({judgement.reason.code}): {judgement.reason.message}")
    raise typer.Exit(1)


async def _look_up(settings: Settings, user: str) -> UserFacts:
    """The person's facts, asked of Lemmy as the gate would (with the bot token if set)."""
    token = settings.lemmy.bot_token
    lemmy = lemmy_client(settings)
    try:
        return await lemmy.person(user, token.get_secret_value() if token else None)
    finally:
        await lemmy.http.aclose()
