"""The rules file: the uploads switch and per-activity rules, read and judged.

An admin writes one TOML file::

    uploads = "on"            # on | off | admins | moderators

    [rules.upload_image]
    all = ["account_age >= 7d", "comments >= 5"]
    rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }

    [rules.create_community]
    any = ['role in ["admin", "moderator"]', { all = ["account_age >= 30d", "posts >= 1"] }]

    moderator_community_min_age = "30d"   # optional, before any [rules.*] table

Any account can create a community on Lemmy and so become its moderator
(community creation is open unless Lemmy's `community_creation_admin_only` is
set: LemmyNet/lemmy 0.19.3 crates/api_crud/src/community/create.rs:50 and
:103-108, 1.0.0-beta.1 crates/api/api_crud/src/community/create.rs:60 and
:123-124; default false, 0.19.3
migrations/2021-04-20-155001_limit-admins-create-community/up.sql:2), so everything granted to moderators (`uploads = "moderators"`, rules
naming the `moderator` role) is granted to everyone unless `create_community`
is gated. `moderator_community_min_age` counts only communities at least that
old when deciding who is a moderator; `lint_warnings` says when a rulebook
trusts moderators without either safeguard.

`parse_rulebook` validates all of it at load and raises `RuleFileError` naming
the file line of the first problem (tomllib keeps no positions, so the
offending string is found again in the source text). `judge` is the pure
decision for one person and activity; counting against rate limits is the
caller's job (see `membership.ratelimit`).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from warden.domain.verdict import Reason
from warden.errors import (
    RuleFileError,
    RuleSyntaxError,
)
from warden.membership.requirements import (
    Activity,
    ActivityRule,
    AllOf,
    AnyOf,
    Condition,
    RateLimit,
    RoleCondition,
    Rules,
    UserFacts,
    parse_condition,
    parse_duration,
    parse_tree,
    rate_limits_for,
)


class UploadsSwitch(StrEnum):
    """Who may upload images at all, before any rule is looked at."""

    ON = "on"
    OFF = "off"
    ADMINS = "admins"
    MODERATORS = "moderators"  # moderators of any community, and admins


@dataclass(frozen=True)
class Rulebook:
    """Everything the rules file says, validated."""

    uploads: UploadsSwitch = UploadsSwitch.ON
    rules: Rules = field(default_factory=Rules)
    #: only moderators of communities at least this old count as moderators
    moderator_community_min_age: timedelta | None = None

    def with_uploads(self, uploads: UploadsSwitch | None) -> Rulebook:
        return self if uploads is None else replace(self, uploads=uploads)


_TOP_KEYS = {"uploads", "rules", "moderator_community_min_age"}
_ACTIVITY_KEYS = {"all", "any", "rate_limit", "message"}
_LIMIT_KEYS = {"count", "per", "unless"}


def parse_rulebook(text: str, source: str = "<rules>") -> Rulebook:
    """Parse and validate a rules file's text; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise RuleFileError(source, line, f"not valid TOML: {exc}") from exc
    except RecursionError:
        # Python 3.11's tomllib recurses once per nested array or inline table, with no
        # limit of its own (the condition tables it yields are bounded in parse_tree)
        raise RuleFileError(
            source,
            _Locator(text).nesting(64),
            "not valid TOML: arrays or tables nested too deeply",
        ) from None
    except ValueError as exc:
        # tomllib's int() of a decimal integer of more than 4,300 digits (Python's
        # sys.int_info.default_max_str_digits) raises a plain ValueError
        raise RuleFileError(
            source,
            _Locator(text).pattern(_LONG_NUMBER),
            f"not valid TOML: a number too long to read ({exc})",
        ) from None
    locate = _Locator(text)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RuleFileError(
            source,
            locate.key(unknown[0]),
            f"unknown setting {unknown[0]!r} (expected `uploads`, "
            "`moderator_community_min_age` and [rules.<activity>] tables)",
        )
    min_age = data.get("moderator_community_min_age")
    if min_age is not None:
        if not isinstance(min_age, str):
            raise RuleFileError(
                source,
                locate.key("moderator_community_min_age"),
                'moderator_community_min_age must be a duration such as "30d"',
            )
        try:
            min_age = parse_duration(min_age)
        except RuleSyntaxError as exc:
            raise RuleFileError(
                source, locate.key("moderator_community_min_age"), str(exc)
            ) from None
    uploads = data.get("uploads", "on")
    try:
        switch = UploadsSwitch(uploads)
    except ValueError:
        raise RuleFileError(
            source,
            locate.key("uploads"),
            f"uploads must be one of {', '.join(s.value for s in UploadsSwitch)}, not {uploads!r}",
        ) from None
    tables = data.get("rules", {})
    if not isinstance(tables, dict):
        raise RuleFileError(source, locate.key("rules"), "`rules` must be a table of activities")
    by_activity: dict[Activity, ActivityRule] = {}
    for name, table in tables.items():
        line = locate.table(name)
        try:
            activity = Activity(name)
        except ValueError:
            known = ", ".join(a.value for a in Activity)
            raise RuleFileError(
                source, line, f"unknown activity {name!r} (known: {known})"
            ) from None
        if not isinstance(table, dict):
            raise RuleFileError(source, line, f"rules.{name} must be a table")
        try:
            by_activity[activity] = _activity_rule(activity, table)
        except RuleSyntaxError as exc:
            raise RuleFileError(
                source, locate.text(exc.text, after=line) or line, f"rules.{name}: {exc}"
            ) from None
    return Rulebook(
        uploads=switch,
        rules=Rules(MappingProxyType(by_activity)),
        moderator_community_min_age=min_age,
    )


def moderator_grants(rulebook: Rulebook) -> list[str]:
    """Where the rulebook grants something to moderators (uploads switch, rule tables)."""
    found = []
    if rulebook.uploads is UploadsSwitch.MODERATORS:
        found.append('uploads = "moderators"')
    for activity, rule in rulebook.rules.by_activity.items():
        conditions = [rule.requirement, *(limit.unless for limit in rule.rate_limits)]
        if any(_trusts_moderators(c) for c in conditions if c is not None):
            found.append(f"[rules.{activity.value}]")
    return found


def _trusts_moderators(condition: Condition) -> bool:
    if isinstance(condition, RoleCondition):
        return "moderator" in condition.roles and not condition.negate
    if isinstance(condition, (AllOf, AnyOf)):
        return any(_trusts_moderators(item) for item in condition.items)
    return False


def lint_warnings(rulebook: Rulebook) -> list[str]:
    """What makes a valid rulebook weaker than it looks (printed by `warden rules lint`)."""
    grants = moderator_grants(rulebook)
    create = rulebook.rules.get(Activity.CREATE_COMMUNITY)
    gated = create is not None and create.requirement is not None
    if not grants or gated or rulebook.moderator_community_min_age is not None:
        return []
    return [
        f"{' and '.join(grants)} trust moderators, but any account can become a moderator "
        "by creating a community: Lemmy lets every user create communities unless its "
        "community_creation_admin_only is on, and [rules.create_community] has no requirement "
        "here. Add requirements to [rules.create_community] (e.g. all = "
        '["account_age >= 30d", "posts >= 1"]), or set moderator_community_min_age = "30d" '
        "so that only moderators of communities at least that old count."
    ]


def _activity_rule(activity: Activity, table: Mapping[str, Any]) -> ActivityRule:
    extra = sorted(set(table) - _ACTIVITY_KEYS)
    if extra:
        raise RuleSyntaxError(
            extra[0], f"unknown key (expected {', '.join(sorted(_ACTIVITY_KEYS))})"
        )
    requirement = None
    if "all" in table or "any" in table:
        requirement = parse_tree(table, where=f"rules.{activity.value}")
    message = table.get("message")
    if message is not None and not isinstance(message, str):
        raise RuleSyntaxError("message", "message must be a string")
    raw = table.get("rate_limit", [])
    limits = raw if isinstance(raw, list) else [raw]
    return ActivityRule(
        activity=activity,
        requirement=requirement,
        rate_limits=tuple(_rate_limit(limit) for limit in limits),
        message=message,
    )


def _rate_limit(table: object) -> RateLimit:
    if not isinstance(table, dict):
        raise RuleSyntaxError("rate_limit", "rate_limit must be a table {count, per, unless}")
    extra = sorted(set(table) - _LIMIT_KEYS)
    if extra:
        raise RuleSyntaxError(extra[0], "unknown rate_limit key (expected count, per, unless)")
    count, per = table.get("count"), table.get("per")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise RuleSyntaxError("count", "rate_limit count must be a whole number >= 1")
    if not isinstance(per, str):
        raise RuleSyntaxError("per", 'rate_limit needs per = "<duration>", e.g. "1d"')
    unless = table.get("unless")
    return RateLimit(
        count=count,
        per=parse_duration(per),
        unless=None if unless is None else parse_condition(unless),
    )


_LONG_NUMBER = re.compile(r"[0-9_]{4300}")


class _Locator:
    """Finds where a key, table or string sits in the source text (1-based lines)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def nesting(self, deeper_than: int) -> int | None:
        """The line where brackets and braces first open more than `deeper_than` deep
        (a rough count: brackets inside strings count too)."""
        depth = 0
        for number, line in enumerate(self.lines, 1):
            for char in line:
                depth += (char in "[{") - (char in "]}")
                if depth > deeper_than:
                    return number
        return None

    def pattern(self, regex: re.Pattern[str]) -> int | None:
        """The line where `regex` first matches, if it does."""
        return next((n for n, line in enumerate(self.lines, 1) if regex.search(line)), None)

    def key(self, name: str) -> int | None:
        for number, line in enumerate(self.lines, 1):
            stripped = line.strip()
            if stripped.startswith(name) and stripped[len(name) :].lstrip().startswith("="):
                return number
        return self.text(name)

    def table(self, activity: str) -> int | None:
        for number, line in enumerate(self.lines, 1):
            compact = line.replace(" ", "")
            if compact.startswith((f"[rules.{activity}]", f"[rules.{activity}.")):
                return number
        return self.text(activity)

    def text(self, needle: str, after: int | None = None) -> int | None:
        start = (after or 1) - 1
        escaped = json.dumps(needle)[1:-1]  # as written inside a basic "..." string
        for number, line in enumerate(self.lines[start:], start + 1):
            if needle in line or escaped in line:
                return number
        return None


@dataclass(frozen=True)
class Judgement:
    """The pure decision for one person and activity, before rate limits are counted.

    `limits` are the rate limits that bind this person; the caller counts the
    use against them and refuses when one is full.
    """

    allowed: bool
    reason: Reason | None = None
    limits: Sequence[RateLimit] = ()


def judge(rulebook: Rulebook, activity: Activity, facts: UserFacts, now: datetime) -> Judgement:
    """May `facts` do `activity` at `now`? Admins meet every requirement (uploads `off` binds everyone)."""
    facts = facts.moderating_only_older_than(rulebook.moderator_community_min_age, now)
    detail: dict[str, Any] = {"activity": activity.value, "person": facts.name}
    if activity is Activity.UPLOAD_IMAGE:
        refusal = _uploads_refusal(rulebook.uploads, facts)
        if refusal:
            return Judgement(False, Reason("uploads_disabled", refusal, detail))
    rule = rulebook.rules.get(activity)
    if rule is None or facts.admin:
        return Judgement(True)
    missing = rule.missing(facts, now)
    if missing:
        sentence = f"You can't {activity.phrase} yet: " + "; ".join(missing) + "."
        if rule.message:
            sentence = f"{rule.message} ({'; '.join(missing)})"
        detail["missing"] = missing
        return Judgement(False, Reason("requirement_not_met", sentence, detail))
    return Judgement(True, limits=tuple(rate_limits_for(rule, facts, now)))


def _uploads_refusal(switch: UploadsSwitch, facts: UserFacts) -> str | None:
    if switch is UploadsSwitch.OFF:
        return "Image uploads are switched off on this instance."
    if switch is UploadsSwitch.ON or facts.admin:
        return None
    if switch is UploadsSwitch.ADMINS:
        return "Image uploads are open to admins only on this instance."
    if not facts.moderator:
        return "Image uploads are open to moderators and admins only on this instance."
    return None


def rate_limited(activity: Activity, facts: UserFacts, limit: RateLimit) -> Reason:
    """The refusal when `limit` is full."""
    return Reason(
        "rate_limited",
        f"You can {activity.phrase} at most {limit.describe()} for now.",
        {"activity": activity.value, "person": facts.name, "count": limit.count},
    )
