"""The admin flag: "this media is bad" -> its hashes in a bank, and who posted it before.

`warden flag` takes a file, a decision id or a SHA-256. Its PDQ hashes go to
the flag bank (`banks.flag_bank`, PDQ, reject) and its SHA-256 to the exact
companion bank (`<flag_bank>-sha256`); both are created on first use. Then the
decisions log of the last `banks.rematch_days` days is matched again against
just the new entries, so the admin learns which earlier uploads were the
same picture (resized, recompressed, rotated) and who uploaded them.

`warden unflag` is the way back from a false positive: the hash leaves every
reject/review bank holding it and goes to the allow bank, which overrides
both banks and the classifier.

When Warden holds the picture itself (a file, or the bytes behind a decision:
the flag chain fetches them), its ORB keypoints are stored with the bank entry
that banked it (store/keypoint_features.py; never the picture), so that the
scanner's keypoint stage refuses crops and small rotations of it too.

The full flag (evidence, purge, ban, strike, and the `flag_action`/`ban_action`
alerts) is services/flag_chain.py, which the console and `warden flag` share;
this module is its bank step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warden.config import Settings
from warden.domain.banks import Bank, BankAction, BankKind, HashMatch
from warden.domain.signals import SHA256, signal_type
from warden.domain.verdict import FrameHash
from warden.errors import FlagError, MediaError
from warden.media import hashing, keypoints, variants
from warden.media.decode import DecodedMedia, DecodeLimits, decode
from warden.media.matcher import BankMatcher
from warden.store.bank_import import NewEntry
from warden.store.banks import BankStore
from warden.store.decisions import DecisionLog, DecisionRecord
from warden.store.keypoint_features import KeypointFeatureStore


@dataclass(frozen=True)
class Target:
    """The media being flagged, as far as it is known."""

    label: str  # what the admin named, for the audit trail
    sha256: str | None
    frames: tuple[FrameHash, ...] = ()
    decision_id: int | None = None
    uploader: str | None = None
    #: Warden's own hashes of the first frame (media/variants.py: trimmed, normalised),
    #: only when Warden holds the file itself; banked apart from the plain PDQ.
    extra: tuple[FrameHash, ...] = ()
    #: ORB keypoints of the first frame, only when Warden holds the picture (issue 16)
    features: keypoints.Features | None = None


@dataclass
class FlagReport:
    target: Target
    pdq_bank: str
    sha_bank: str
    added: list[str] = field(default_factory=list)  # hashes newly in a bank
    extra_bank: str | None = None  # where Warden's own hashes went (None: none banked)
    keypoints_entry: int | None = None  # the entry the picture's keypoints are kept under
    low_quality: list[FrameHash] = field(default_factory=list)  # PDQ too weak to bank
    earlier: list[tuple[DecisionRecord, HashMatch]] = field(default_factory=list)

    @property
    def uploaders(self) -> list[str]:
        # the attributed Lemmy account (issue 18) first, else an /api/v1/scan uploader
        names = [self.target.uploader] + [r.account or r.uploader for r, _ in self.earlier]
        return sorted({n for n in names if n})


def resolve(arg: str, settings: Settings, decisions: DecisionLog) -> Target:
    """A file path, a decision id or a SHA-256 -> the hashes to flag."""
    path = Path(arg)
    if path.is_file():
        from warden.services import decode_limits

        data = path.read_bytes()
        media = decode(data, decode_limits(settings))
        frames = tuple(
            FrameHash(f.index, hs[0].hex, hs[0].quality, tuple(h.hex for h in hs[1:]))
            for f in media.frames
            for hs in (hashing.pdq_dihedral(f.image),)
        )
        robust = settings.banks.robust_matching
        extra = variants.robust_frames(media.frames, query=False) if robust else ()
        return Target(
            f"file {path.name}",
            hashing.sha256(data),
            frames,
            extra=extra,
            features=first_frame_features(media),
        )
    if arg.isdigit():
        record = decisions.get(int(arg))
        if record is None:
            raise FlagError(f"no decision {arg} in the decisions log")
        v = record.verdict
        who = record.account or record.uploader
        return Target(f"decision {arg}", v.sha256 or None, v.frames, record.id, who)
    if SHA256.accepts(arg):
        sha = SHA256.normalise(arg)
        seen = decisions.by_sha256(sha)
        if seen:
            last = seen[-1]
            who = last.account or last.uploader
            return Target(f"sha256 {sha}", sha, last.verdict.frames, last.id, who)
        return Target(f"sha256 {sha}", sha)
    raise FlagError(f"{arg!r} is neither a file, a decision id nor a 64-digit SHA-256")


def first_frame_features(media: DecodedMedia) -> keypoints.Features | None:
    """The keypoints of a decoded file's first frame, as the scanner describes it
    (the same decode, the same frame); None when it has too few to match by."""
    if not media.frames:
        return None
    found = keypoints.features(media.frames[0].image)
    return found if len(found) >= keypoints.MIN_INLIERS else None


def with_features(target: Target, data: bytes | None, limits: DecodeLimits) -> Target:
    """The target with its picture's keypoints, taken from the file's bytes when they
    are at hand (a decision's evidence or pict-rs's copy); unchanged when they are not,
    or when the bytes are not the target's or do not decode."""
    if target.features is not None or data is None:
        return target
    if target.sha256 and hashing.sha256(data) != target.sha256:
        return target
    try:
        media = decode(data, limits)
    except MediaError:
        return target
    return replace(target, features=first_frame_features(media))


def _keep_features(store: BankStore, target: Target, pdq_bank: Bank, sha_bank: Bank) -> int | None:
    """Store the target's keypoints under its first strong frame's PDQ entry in the
    flag bank (else its SHA-256 entry): the entry id, or None without features."""
    strong = _first_strong_pdq(target, pdq_bank)
    bank, value = (pdq_bank, strong) if strong else (sha_bank, target.sha256)
    return _save_features(store, target, bank, value)


def keep_features_in(store: BankStore, target: Target, bank: Bank) -> int | None:
    """`warden hashes add FILE`: the file's keypoints under the entry just added to
    `bank` (its first strong frame's PDQ in a PDQ bank, its SHA-256 in an exact one),
    so a crop or a small turn of a file an admin banked by hand is refused too."""
    exact = signal_type(bank.kind.value).exact
    value = target.sha256 if exact else _first_strong_pdq(target, bank)
    return _save_features(store, target, bank, value)


def _first_strong_pdq(target: Target, bank: Bank) -> str | None:
    """The PDQ of the target's first frame of at least the bank's minimum quality."""
    return next((f.pdq for f in target.frames if f.quality >= bank.min_quality), None)


def _save_features(store: BankStore, target: Target, bank: Bank, value: str | None) -> int | None:
    """Keep the target's keypoints beside its entry `value` in `bank`: the entry id,
    or None when there are no features or no such entry."""
    if target.features is None or not target.sha256 or not value:
        return None
    ids = [e.id for e in store.lookup(value) if e.bank == bank.name]
    if not ids:
        return None
    f = target.features
    KeypointFeatureStore(store.db).save(ids[0], target.sha256, f.points, f.descriptors)
    return ids[0]


def _banks(store: BankStore, name: str, action: BankAction, what: str) -> tuple[Bank, Bank]:
    pdq = store.ensure_bank(name, BankKind.PDQ, action, f"{what} (PDQ)")
    sha = store.ensure_bank(f"{name}-sha256", BankKind.SHA256, action, f"{what} (exact)")
    return pdq, sha


def _extra_bank(store: BankStore, name: str, target: Target) -> Bank | None:
    """The bank for Warden's own hashes of flagged files (`<flag_bank>-warden`), kept
    apart so that the plain PDQ bank stays exchangeable (feeds, exports); None when
    the target has no such hashes."""
    if not target.extra:
        return None
    return store.ensure_bank(
        f"{name}-warden",
        BankKind.PDQ,
        BankAction.REJECT,
        "Warden's own trimmed/normalised hashes of flagged files (not exchangeable PDQ)",
    )


def flag(
    target: Target,
    *,
    settings: Settings,
    store: BankStore,
    decisions: DecisionLog,
    by: str,
    reason: str,
    now: datetime | None = None,
) -> FlagReport:
    """Bank the target's hashes and find earlier decisions that match them."""
    pdq_bank, sha_bank = _banks(
        store, settings.banks.flag_bank, BankAction.REJECT, "confirmed by this instance's admins"
    )
    report = FlagReport(target, pdq_bank.name, sha_bank.name)
    source = f"warden flag: {target.label}"
    strong = [f for f in target.frames if f.quality >= pdq_bank.min_quality]
    report.low_quality = [f for f in target.frames if f.quality < pdq_bank.min_quality]
    if not strong and not target.sha256:
        raise FlagError("nothing to flag: no SHA-256 and no PDQ of usable quality")
    matcher = BankMatcher()
    matcher.set_banks([pdq_bank, sha_bank])
    wanted = [(pdq_bank, f.pdq) for f in strong]
    if target.sha256:
        wanted.append((sha_bank, target.sha256))
    extra_bank = _extra_bank(store, settings.banks.flag_bank, target)
    if extra_bank is not None:
        matcher.set_banks([pdq_bank, sha_bank, extra_bank])
        floor = extra_bank.min_quality
        wanted.extend((extra_bank, f.pdq) for f in target.extra if f.quality >= floor)
        report.extra_bank = extra_bank.name
    for bank, value in dict.fromkeys(wanted):
        before = {e.bank for e in store.lookup(value)}
        store.add(bank.name, [NewEntry(value, source, by, reason)])
        if bank.name not in before:
            report.added.append(value)
        ids = [e.id for e in store.lookup(value) if e.bank == bank.name]
        matcher.add(bank.id, [(i, value) for i in ids])
    report.keypoints_entry = _keep_features(store, target, pdq_bank, sha_bank)
    since = (now or datetime.now(UTC)) - timedelta(days=settings.banks.rematch_days)
    for record in decisions.since(since):
        if record.id == target.decision_id:
            continue
        found = matcher.match(record.verdict.sha256, record.verdict.frames)
        if found:
            report.earlier.append((record, found[0]))
    return report


@dataclass
class UnflagReport:
    removed_from: list[str] = field(default_factory=list)
    allow_banks: list[str] = field(default_factory=list)


def unflag(
    target: Target, *, settings: Settings, store: BankStore, by: str, reason: str
) -> UnflagReport:
    """Take the target's hashes out of every refusing bank and into the allow banks."""
    report = UnflagReport()
    values = [f.pdq for f in (*target.frames, *target.extra)]
    values += [target.sha256] if target.sha256 else []
    for value in values:
        for entry in store.lookup(value):
            bank = store.bank(entry.bank)
            if bank.action is not BankAction.ALLOW:
                store.remove(bank.name, [str(entry.id)], by=by, reason=f"unflag: {reason}")
                report.removed_from.append(bank.name)
    pdq_bank, sha_bank = _banks(
        store, settings.banks.allow_bank, BankAction.ALLOW, "false positives cleared by admins"
    )
    source = f"warden unflag: {target.label}"
    if target.frames:
        store.add(pdq_bank.name, [NewEntry(f.pdq, source, by, reason) for f in target.frames])
        report.allow_banks.append(pdq_bank.name)
    if target.sha256:
        store.add(sha_bank.name, [NewEntry(target.sha256, source, by, reason)])
        report.allow_banks.append(sha_bank.name)
    return report
