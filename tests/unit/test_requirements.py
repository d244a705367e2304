"""Rule language: parsing, boundary ages, explanations, bad files with lines, rate limits."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from warden.errors import RuleFileError, RuleSyntaxError
from warden.membership.gate import AccessGate, RuleSource
from warden.membership.ratelimit import Claim, MemoryUsageCounter
from warden.membership.requirements import (
    Activity,
    ModeratedCommunity,
    UserFacts,
    describe_duration,
    parse_condition,
    parse_duration,
)
from warden.membership.rulebook import Rulebook, UploadsSwitch, judge, lint_warnings, parse_rulebook

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

RULES = """\
uploads = "on"

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]
rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }

[rules.create_community]
any = ['role in ["admin", "moderator"]', { all = ["account_age >= 30d", "posts >= 1"] }]

[rules.send_private_message]
all = ["account_age >= 2d"]
message = "New accounts wait two days before sending messages"
"""


def person(age: timedelta, *, comments: int = 10, posts: int = 2, **kw: object) -> UserFacts:
    return UserFacts(
        person_id=int(kw.pop("person_id", 7)),  # type: ignore[call-overload]
        name=str(kw.pop("name", "alice")),
        published=NOW - age,
        comments=comments,
        posts=posts,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def book() -> Rulebook:
    return parse_rulebook(RULES, "rules.toml")


@pytest.mark.parametrize(
    ("age", "allowed"),
    [
        (timedelta(days=7), True),
        (timedelta(days=7) - timedelta(seconds=1), False),
        (timedelta(days=7, seconds=1), True),
        (timedelta(0), False),
    ],
)
def test_account_age_boundary(book: Rulebook, age: timedelta, allowed: bool) -> None:
    assert judge(book, Activity.UPLOAD_IMAGE, person(age), NOW).allowed is allowed


def test_refusal_says_what_is_missing(book: Rulebook) -> None:
    j = judge(book, Activity.UPLOAD_IMAGE, person(timedelta(days=2, hours=5), comments=1), NOW)
    assert not j.allowed and j.reason is not None
    assert j.reason.code == "requirement_not_met"
    assert "account must be 7 days old; yours is 2 days" in j.reason.message
    assert "you need at least 5 comments; you have 1" in j.reason.message
    assert j.reason.detail["missing"] == [
        "account must be 7 days old; yours is 2 days",
        "you need at least 5 comments; you have 1",
    ]


def test_any_with_nested_all(book: Rulebook) -> None:
    young = person(timedelta(days=3), posts=0)
    j = judge(book, Activity.CREATE_COMMUNITY, young, NOW)
    assert not j.allowed and j.reason is not None
    assert "only open to admins or moderators" in j.reason.message
    assert "account must be 30 days old; yours is 3 days and you need at least 1 post" in (
        j.reason.message
    )
    assert judge(book, Activity.CREATE_COMMUNITY, person(timedelta(days=30)), NOW).allowed
    moderator = person(timedelta(days=1), moderates=(ModeratedCommunity(4, NOW),))
    assert judge(book, Activity.CREATE_COMMUNITY, moderator, NOW).allowed


def test_admin_meets_every_requirement_and_unruled_activities_are_open(book: Rulebook) -> None:
    admin = person(timedelta(0), comments=0, admin=True)
    assert judge(book, Activity.UPLOAD_IMAGE, admin, NOW).allowed
    assert judge(book, Activity.CREATE_POST, person(timedelta(0), comments=0), NOW).allowed


def test_custom_message_keeps_the_facts(book: Rulebook) -> None:
    j = judge(book, Activity.SEND_PRIVATE_MESSAGE, person(timedelta(hours=3)), NOW)
    assert j.reason is not None
    assert j.reason.message == (
        "New accounts wait two days before sending messages "
        "(account must be 2 days old; yours is 3 hours)"
    )


@pytest.mark.parametrize(
    ("switch", "who", "allowed"),
    [
        ("off", {"admin": True}, False),
        ("admins", {"admin": True}, True),
        ("admins", {"moderates": (ModeratedCommunity(1, NOW),)}, False),
        ("moderators", {"moderates": (ModeratedCommunity(1, NOW),)}, True),
        ("moderators", {"admin": True}, True),
        ("moderators", {}, False),
        ("on", {}, True),
    ],
)
def test_uploads_switch(switch: str, who: dict[str, object], allowed: bool) -> None:
    book = parse_rulebook(f'uploads = "{switch}"\n')
    j = judge(book, Activity.UPLOAD_IMAGE, person(timedelta(days=100), **who), NOW)
    assert j.allowed is allowed
    if not allowed:
        assert j.reason is not None and j.reason.code == "uploads_disabled"
    # the switch is about uploads only
    assert judge(book, Activity.CREATE_POST, person(timedelta(0)), NOW).allowed


def test_rate_limit_binds_only_below_the_bar(book: Rulebook) -> None:
    young = judge(book, Activity.UPLOAD_IMAGE, person(timedelta(days=10)), NOW)
    old = judge(book, Activity.UPLOAD_IMAGE, person(timedelta(days=31)), NOW)
    assert len(young.limits) == 1 and young.limits[0].count == 3
    assert old.limits == ()


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('uploads = "sometimes"\n', 1, "uploads must be one of on, off, admins, moderators"),
        ('uploads = "on"\n\n[rules.upload_images]\nall = []\n', 3, "unknown activity"),
        (
            '[rules.upload_image]\nall = ["account_age >= 7d"]\n\n[rules.create_post]\n'
            'all = ["karma >= 5"]\n',
            5,
            "unknown fact 'karma'",
        ),
        ('[rules.create_post]\nall = ["account_age >= 7 days"]\n', 2, "not a duration"),
        ('[rules.create_post]\nall = ["account_age <= 7d"]\n', 2, "only be compared with >="),
        ('[rules.create_post]\nany = ["role in [\\"owner\\"]"]\n', 2, "unknown role 'owner'"),
        ("[rules.create_post]\nall = []\n", 1, "non-empty list"),
        ('[rules.create_post]\nall = ["posts >= 1"]\nany = ["posts >= 2"]\n', 1, "exactly one"),
        (
            '[rules.create_post]\nall = ["posts >= 1"]\nrate_limit = { count = 0, per = "1d" }\n',
            3,
            "count must be a whole number",
        ),
        ('[rules.create_post]\nall = ["posts >= 1"]\nlimit = 3\n', 3, "unknown key"),
        ("uploads = \n", 1, "not valid TOML"),
        ('upload = "off"\n', 1, "unknown setting 'upload'"),
    ],
)
def test_bad_rule_files_point_at_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(RuleFileError) as info:
        parse_rulebook(text, "rules.toml")
    assert info.value.line == line, str(info.value)
    assert problem in str(info.value)
    assert str(info.value).startswith(f"rules.toml:{line}: ")


def test_condition_forms() -> None:
    assert parse_condition("role == admin").holds(person(timedelta(0), admin=True), NOW)
    assert parse_condition("role != admin").holds(person(timedelta(0)), NOW)
    assert parse_condition("role not in ['admin']").holds(person(timedelta(0)), NOW)
    assert parse_condition('account_age >= "7d"').holds(person(timedelta(days=8)), NOW)
    assert parse_condition({"any": ["posts >= 9", "comments >= 9"]}).holds(person(NOW - NOW), NOW)
    with pytest.raises(RuleSyntaxError):
        parse_condition("comments >= five")
    assert parse_duration("2w") == timedelta(days=14)
    assert describe_duration(timedelta(hours=49)) == "2 days"
    assert describe_duration(timedelta(seconds=1)) == "1 second"


def test_memory_counter_is_exact_under_concurrency() -> None:
    counter = MemoryUsageCounter()
    claim = Claim("k", 50, timedelta(days=1))
    granted: list[bool] = []

    def worker() -> None:
        for _ in range(20):
            granted.append(counter.acquire([claim], NOW) is None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 50
    assert counter.used("k", claim.window, NOW) == 50
    # the window slides
    assert counter.acquire([claim], NOW + timedelta(days=1, seconds=1)) is None


def test_gate_counts_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    clock = [NOW]
    source = RuleSource(path, check_every_s=3600)
    gate = AccessGate(source, MemoryUsageCounter(), clock=lambda: clock[0])
    alice = person(timedelta(days=10))
    results = [gate.decide(Activity.UPLOAD_IMAGE, alice).allowed for _ in range(4)]
    assert results == [True, True, True, False]
    refused = gate.decide(Activity.UPLOAD_IMAGE, alice)
    assert refused.reason is not None and refused.reason.code == "rate_limited"
    assert "at most 3 times per 1 day" in refused.reason.message
    # another person has their own count; an old account has none
    assert gate.decide(Activity.UPLOAD_IMAGE, person(timedelta(days=10), person_id=8)).allowed
    old = person(timedelta(days=40), person_id=9)
    assert all(gate.decide(Activity.UPLOAD_IMAGE, old).allowed for _ in range(5))
    clock[0] = NOW + timedelta(days=1, seconds=1)
    assert gate.decide(Activity.UPLOAD_IMAGE, alice).allowed

    path.write_text('uploads = "off"\n')
    source.reload()
    assert gate.decide(Activity.UPLOAD_IMAGE, old).allowed is False
    path.write_text('uploads = "of"\n')
    with pytest.raises(RuleFileError):
        source.reload()
    assert source.current().uploads is UploadsSwitch.OFF  # the good rules stay


# -- item 4: moderators anyone can become ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ('uploads = "moderators"\n', True),
        ("[rules.create_post]\nall = ['role in [\"moderator\"]']\n", True),
        (
            '[rules.upload_image]\nall = ["comments >= 5"]\n'
            'rate_limit = { count = 1, per = "1d", unless = \'role == "moderator"\' }\n',
            True,
        ),
        ('uploads = "moderators"\n[rules.create_community]\nall = ["account_age >= 30d"]\n', False),
        ('uploads = "moderators"\nmoderator_community_min_age = "30d"\n', False),
        ("[rules.create_post]\nall = ['role not in [\"moderator\"]']\n", False),
        ('uploads = "admins"\n', False),
        (RULES, False),  # create_community is gated there
    ],
)
def test_lint_warns_when_moderators_are_trusted_and_anyone_can_become_one(
    text: str, warned: bool
) -> None:
    warnings = lint_warnings(parse_rulebook(text))
    assert bool(warnings) is warned
    if warned:
        assert "any account can become a moderator by creating a community" in warnings[0]
        assert "community_creation_admin_only" in warnings[0]
        assert "moderator_community_min_age" in warnings[0]


def test_moderator_community_min_age_counts_only_old_communities() -> None:
    book = parse_rulebook('uploads = "moderators"\nmoderator_community_min_age = "30d"\n')
    assert book.moderator_community_min_age == timedelta(days=30)

    def of(*communities: ModeratedCommunity) -> UserFacts:
        return person(timedelta(days=400), moderates=communities)

    fresh = of(ModeratedCommunity(1, NOW - timedelta(days=2)))
    j = judge(book, Activity.UPLOAD_IMAGE, fresh, NOW)
    assert not j.allowed and j.reason is not None and j.reason.code == "uploads_disabled"
    assert judge(
        book, Activity.UPLOAD_IMAGE, of(ModeratedCommunity(1, NOW - timedelta(days=30))), NOW
    ).allowed
    assert judge(
        book,
        Activity.UPLOAD_IMAGE,
        of(
            ModeratedCommunity(1, NOW - timedelta(days=1)),
            ModeratedCommunity(2, NOW - timedelta(days=90)),
        ),
        NOW,
    ).allowed
    unknown = of(ModeratedCommunity(1, None))  # an age Lemmy did not give: not counted
    assert not judge(book, Activity.UPLOAD_IMAGE, unknown, NOW).allowed
    roles = parse_rulebook(
        'moderator_community_min_age = "30d"\n[rules.create_post]\nall = [\'role in ["moderator"]\']\n'
    )
    assert not judge(roles, Activity.CREATE_POST, fresh, NOW).allowed
    without = parse_rulebook('uploads = "moderators"\n')  # no setting: every community counts
    assert judge(without, Activity.UPLOAD_IMAGE, fresh, NOW).allowed


def test_moderator_community_min_age_must_be_a_duration() -> None:
    with pytest.raises(RuleFileError, match=r"<rules>:2: not a duration"):
        parse_rulebook('uploads = "on"\nmoderator_community_min_age = "soon"\n')
    with pytest.raises(RuleFileError, match="must be a duration"):
        parse_rulebook("moderator_community_min_age = 30\n")


_NESTED_CONDITION = '"posts >= 1"'
for _ in range(17):
    _NESTED_CONDITION = "{ all = [" + _NESTED_CONDITION + "] }"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        # str.isdigit() takes superscripts, which int() refuses (fuzz: ValueError)
        ('[rules.create_post]\nall = ["comments >= ²"]\n', 2, "whole number of at most 9"),
        ('[rules.create_post]\nall = ["posts >= ٣"]\n', 2, "whole number of at most 9"),
        ('[rules.create_post]\nall = ["posts >= 1000000000"]\n', 2, "at most 9 digits"),
        # int() refuses more than 4,300 digits with a ValueError
        (f'[rules.create_post]\nall = ["posts >= {"9" * 5000}"]\n', 2, "at most 9 digits"),
        (f'[rules.create_post]\nall = ["account_age >= {"9" * 5000}d"]\n', 2, "too long"),
        # timedelta overflows past 999,999,999 days (fuzz: OverflowError)
        (
            '[rules.create_post]\nall = ["posts >= 1"]\n'
            'rate_limit = { count = 1, per = "99999999999999999d" }\n',
            3,
            "too long a duration (at most 100 years)",
        ),
        ('moderator_community_min_age = "99999999999999d"\n', 1, "at most 100 years"),
        ('moderator_community_min_age = "36501d"\n', 1, "at most 100 years"),
        # tomllib recurses once per nested array (fuzz: RecursionError)
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested too deeply"),
        ('uploads = "on"\nx = ' + "[" * 5000 + "]" * 5000 + "\n", 2, "nested too deeply"),
        # tomllib's own int() of a 5,000-digit integer
        ('uploads = "on"\nx = ' + "1" * 5000 + "\n", 2, "a number too long to read"),
        # json.loads recurses once per nested array too
        (
            '[rules.create_post]\nall = ["role in ' + "[" * 5000 + "]" * 5000 + '"]\n',
            2,
            "role in needs a list of names",
        ),
        (f"[rules.create_post]\nall = [{_NESTED_CONDITION}]\n", 1, "nested more than 16 deep"),
    ],
)
def test_every_bad_rule_file_is_a_rule_file_error(text: str, line: int, problem: str) -> None:
    """Found by fuzzing (tests/fuzz/regressions/rulebook): nothing but RuleFileError,
    which is all `warden rules lint` and RuleSource (membership/gate.py) catch."""
    with pytest.raises(RuleFileError) as info:
        parse_rulebook(text, "rules.toml")
    assert info.value.line == line, str(info.value)
    assert problem in str(info.value)
    assert len(str(info.value)) < 400  # a 5,000-character value is not echoed whole


def test_durations_and_counts_at_their_bounds() -> None:
    assert parse_duration("36500d") == timedelta(days=36500)
    assert parse_duration("0000000000000000007d") == timedelta(days=7)
    assert parse_duration(" 12h ") == timedelta(hours=12)
    for text in ("36501d", "5215w", "3153600001s", "1" * 5000 + "s", "7²d", "٣d"):
        with pytest.raises(RuleSyntaxError):
            parse_duration(text)
    assert parse_condition("comments >= 999999999").holds(person(timedelta(0)), NOW) is False
    nested: object = "posts >= 1"
    for _ in range(15):
        nested = {"all": [nested]}
    assert parse_condition(nested).holds(person(timedelta(0)), NOW)


def test_rule_source_keeps_its_rules_when_the_file_nests_too_deeply(tmp_path: Path) -> None:
    """The edit that made /authz answer 500: RuleSource._check catches only RuleFileError."""
    path = tmp_path / "rules.toml"
    path.write_text('uploads = "off"\n')
    source = RuleSource(path, check_every_s=0)
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    assert source.current().uploads is UploadsSwitch.OFF
    with pytest.raises(RuleFileError, match="nested too deeply"):
        source.reload()
