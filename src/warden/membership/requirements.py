"""Account requirements: the conditions a person must meet to do an activity.

The admin writes conditions as short strings (``"account_age >= 7d"``,
``"comments >= 5"``, ``'role in ["admin", "moderator"]'``) combined with
``all``/``any``; this module parses one condition tree and evaluates it against
a person's facts at a given instant. Pure: no I/O, no clock of its own, so the
boundary cases (an account exactly 7 days old) are plain unit tests.

A failed check never answers just "no": every unmet condition becomes a
sentence saying what is missing ("account must be 7 days old; yours is 2
days"), and the refusal carries them all.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from warden.errors import RuleSyntaxError


class Activity(StrEnum):
    """Things a person does through Lemmy's API that rules may restrict."""

    UPLOAD_IMAGE = "upload_image"
    CREATE_COMMUNITY = "create_community"
    SEND_PRIVATE_MESSAGE = "send_private_message"
    CREATE_POST = "create_post"
    CREATE_COMMENT = "create_comment"
    CREATE_INVITE = "create_invite"

    @property
    def phrase(self) -> str:
        """What the person tried to do, for refusal sentences."""
        return _PHRASES[self]


_PHRASES = {
    Activity.UPLOAD_IMAGE: "upload images",
    Activity.CREATE_COMMUNITY: "create communities",
    Activity.SEND_PRIVATE_MESSAGE: "send private messages",
    Activity.CREATE_POST: "post",
    Activity.CREATE_COMMENT: "comment",
    Activity.CREATE_INVITE: "create invites",
}

ROLES = ("admin", "moderator", "user")


@dataclass(frozen=True)
class ModeratedCommunity:
    """A community the person moderates; `published` is when it was created (None: unknown)."""

    id: int
    published: datetime | None = None


@dataclass(frozen=True)
class UserFacts:
    """What Warden knows about one local account, as Lemmy reported it.

    `moderates` holds the communities the person moderates. Any account can
    create a community and so moderate one (unless Lemmy's
    `community_creation_admin_only` is on), which is why a rulebook can count
    only communities older than `moderator_community_min_age`
    (see `moderating_only_older_than`).
    """

    person_id: int
    name: str
    published: datetime
    comments: int
    posts: int
    admin: bool = False
    banned: bool = False
    moderates: tuple[ModeratedCommunity, ...] = ()

    @property
    def moderator(self) -> bool:
        return bool(self.moderates)

    @property
    def roles(self) -> frozenset[str]:
        """Every role the person holds; everyone is a `user`."""
        roles = {"user"}
        if self.admin:
            roles.add("admin")
        if self.moderator:
            roles.add("moderator")
        return frozenset(roles)

    def age(self, now: datetime) -> timedelta:
        return now - self.published

    def moderating_only_older_than(self, min_age: timedelta | None, now: datetime) -> UserFacts:
        """These facts with only the moderated communities at least `min_age` old.

        A community of unknown age does not count (failing closed); None keeps all.
        """
        if min_age is None:
            return self
        kept = tuple(
            c for c in self.moderates if c.published is not None and now - c.published >= min_age
        )
        return replace(self, moderates=kept)


# ASCII digits only: `\d` (and str.isdigit) take other scripts' digits and superscripts
_DURATION = re.compile(r"\s*([0-9]+)\s*(s|m|h|d|w)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: the longest duration a rule may name; timedelta itself overflows past 999,999,999 days
MAX_DURATION = timedelta(days=100 * 365)
#: counts in conditions (`comments >= 5`) take at most this many ASCII digits
_COUNT = re.compile(r"[0-9]{1,9}")


def parse_duration(text: str) -> timedelta:
    """``"7d"`` → 7 days. Units: s, m, h, d, w; at most `MAX_DURATION` (100 years)."""
    match = _DURATION.fullmatch(text.strip().strip("\"'"))
    if not match:
        raise RuleSyntaxError(text, "not a duration (write e.g. 30m, 12h, 7d, 2w)")
    digits = match.group(1).lstrip("0") or "0"
    # 100 years is 3,153,600,000 s (10 digits): more digits than that is too long already,
    # and never reaches int(), which refuses more than 4,300 digits with a ValueError
    if len(digits) > 10 or int(digits) * _UNITS[match.group(2)] > MAX_DURATION.total_seconds():
        raise RuleSyntaxError(text, "too long a duration (at most 100 years)")
    return timedelta(seconds=int(digits) * _UNITS[match.group(2)])


def describe_duration(span: timedelta) -> str:
    """A rounded-down human duration: "2 days", "5 hours", "1 minute"."""
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class Condition:
    """A node of the requirement tree."""

    text: str

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        """Sentences for what is not met; empty when the condition holds."""
        raise NotImplementedError

    def holds(self, facts: UserFacts, now: datetime) -> bool:
        return not self.missing(facts, now)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class AgeCondition(Condition):
    """``account_age >= 7d``: only lower bounds make sense for age, so only >= and >."""

    text: str
    op: str
    minimum: timedelta

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        age = facts.age(now)
        if _OPS[self.op](age.total_seconds(), self.minimum.total_seconds()):
            return []
        more = " more than" if self.op == ">" else ""
        return [
            f"account must be{more} {describe_duration(self.minimum)} old; "
            f"yours is {describe_duration(age)}"
        ]


@dataclass(frozen=True)
class CountCondition(Condition):
    """``comments >= 5`` or ``posts >= 1``."""

    text: str
    fact: str
    op: str
    value: int

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        have = facts.comments if self.fact == "comments" else facts.posts
        if _OPS[self.op](have, self.value):
            return []
        noun = self.fact[:-1]
        wanted = {
            ">=": f"at least {_plural(self.value, noun)}",
            ">": f"more than {_plural(self.value, noun)}",
            "<=": f"at most {_plural(self.value, noun)}",
            "<": f"fewer than {_plural(self.value, noun)}",
            "==": f"exactly {_plural(self.value, noun)}",
            "!=": f"other than {_plural(self.value, noun)}",
        }[self.op]
        return [f"you need {wanted}; you have {have}"]


@dataclass(frozen=True)
class RoleCondition(Condition):
    """``role in ["admin", "moderator"]`` (or ``not in``, ``==``, ``!=``)."""

    text: str
    roles: frozenset[str]
    negate: bool = False

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        hit = bool(self.roles & facts.roles)
        if hit != self.negate:
            return []
        names = " or ".join(f"{r}s" for r in sorted(self.roles))
        return [f"{'not open to' if self.negate else 'only open to'} {names}"]


@dataclass(frozen=True)
class AllOf(Condition):
    items: tuple[Condition, ...]
    text: str = "all"

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        return [m for item in self.items for m in item.missing(facts, now)]


@dataclass(frozen=True)
class AnyOf(Condition):
    items: tuple[Condition, ...]
    text: str = "any"

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        parts: list[str] = []
        for item in self.items:
            miss = item.missing(facts, now)
            if not miss:
                return []
            parts.append(" and ".join(miss))
        if len(parts) == 1:
            return parts
        return ["one of: " + "; or ".join(parts)]


_COMPARE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<|not\s+in|in)\s*(.+?)\s*$")


#: how deeply `all`/`any` tables may nest inside one another (parsing and judging recurse)
MAX_NESTING = 16


def parse_condition(node: object, *, depth: int = 0) -> Condition:
    """One condition: a string, or a table with exactly one of `all` / `any`."""
    if isinstance(node, str):
        return _parse_text(node)
    if isinstance(node, Mapping):
        return parse_tree(node, where="condition", depth=depth)
    raise RuleSyntaxError(repr(node)[:80], "a condition must be a string or an {all = [...]} table")


def parse_tree(table: Mapping[str, object], *, where: str, depth: int = 0) -> AllOf | AnyOf:
    """`{all = [...]}` or `{any = [...]}`; exactly one key, a non-empty list.

    `depth` counts the tables around this one; more than `MAX_NESTING` is refused.
    """
    keys = [k for k in ("all", "any") if k in table]
    if len(keys) != 1:
        raise RuleSyntaxError(where, "needs exactly one of `all` or `any`")
    if depth >= MAX_NESTING:
        raise RuleSyntaxError(where, f"`all`/`any` nested more than {MAX_NESTING} deep")
    items = table[keys[0]]
    if not isinstance(items, list) or not items:
        raise RuleSyntaxError(where, f"`{keys[0]}` must be a non-empty list of conditions")
    parsed = tuple(parse_condition(item, depth=depth + 1) for item in items)
    return AllOf(parsed) if keys[0] == "all" else AnyOf(parsed)


def _parse_text(text: str) -> Condition:
    match = _COMPARE.match(text)
    if not match:
        raise RuleSyntaxError(text, "not a condition (write e.g. `account_age >= 7d`)")
    fact, op, value = match.group(1), " ".join(match.group(2).split()), match.group(3)
    if fact == "account_age":
        if op not in (">=", ">"):
            raise RuleSyntaxError(text, "account_age can only be compared with >= or >")
        return AgeCondition(text, op, parse_duration(value))
    if fact in ("comments", "posts"):
        if op not in _OPS:
            raise RuleSyntaxError(text, f"{fact} is compared with >=, >, <=, <, == or !=")
        if not _COUNT.fullmatch(value):
            raise RuleSyntaxError(
                text, f"{fact} must be compared with a whole number of at most 9 digits"
            )
        return CountCondition(text, fact, op, int(value))
    if fact == "role":
        return _parse_role(text, op, value)
    raise RuleSyntaxError(
        text, f"unknown fact {fact!r} (known: account_age, comments, posts, role)"
    )


def _parse_role(text: str, op: str, value: str) -> RoleCondition:
    if op in ("in", "not in"):
        try:
            roles = json.loads(value.replace("'", '"'))
        except (ValueError, RecursionError):  # json recurses once per nested array
            roles = None
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise RuleSyntaxError(
                text, 'role in needs a list of names, e.g. ["admin", "moderator"]'
            )
    elif op in ("==", "!="):
        roles = [value.strip("\"'")]
    else:
        raise RuleSyntaxError(text, "role is compared with in, not in, == or !=")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise RuleSyntaxError(text, f"unknown role {unknown[0]!r} (known: {', '.join(ROLES)})")
    return RoleCondition(text, frozenset(roles), negate=op in ("not in", "!="))


@dataclass(frozen=True)
class RateLimit:
    """At most `count` uses per `per`, for people who do not meet `unless`.

    Without `unless` the limit applies to every non-admin account.
    """

    count: int
    per: timedelta
    unless: Condition | None = None

    def applies(self, facts: UserFacts, now: datetime) -> bool:
        return self.unless is None or not self.unless.holds(facts, now)

    def describe(self) -> str:
        return f"{_plural(self.count, 'time')} per {describe_duration(self.per)}"


@dataclass(frozen=True)
class ActivityRule:
    """The requirement and rate limits for one activity."""

    activity: Activity
    requirement: Condition | None = None
    rate_limits: tuple[RateLimit, ...] = ()
    message: str | None = None

    def missing(self, facts: UserFacts, now: datetime) -> list[str]:
        return [] if self.requirement is None else self.requirement.missing(facts, now)


def rate_limits_for(rule: ActivityRule, facts: UserFacts, now: datetime) -> Sequence[RateLimit]:
    """The rate limits that bind this person now (admins are never limited)."""
    if facts.admin:
        return ()
    return [limit for limit in rule.rate_limits if limit.applies(facts, now)]


@dataclass(frozen=True)
class Rules:
    """Every activity rule, by activity (activities without a rule are open)."""

    by_activity: Mapping[Activity, ActivityRule] = field(default_factory=dict)

    def get(self, activity: Activity) -> ActivityRule | None:
        return self.by_activity.get(activity)
