"""What of a verdict may leave Warden: CSAM-bank matches are reported without names.

A CSAM bank's names, entry ids and hashes are the one thing Warden must never
hand out: knowing which list matched, or which entry, tells an uploader how to
step around it (or confirms what a file is), and the bank's PDQ hashes are
themselves part of a list that is shared under agreement. They stay in the
decisions log and go out only in the evidence export, to the authorities.

`public_verdict` is applied to every verdict answered over HTTP to API
callers: a reason that came from a CSAM bank keeps its neutral code
(`hash_match`) and gets a neutral sentence and no detail; CSAM matches are
dropped from `matches`. Other banks (an admin's own spam list) are shown as
before — the admin made them and may need to see which entry matched.
`warden scan --json` is local admin use and keeps everything.
"""

from __future__ import annotations

from typing import Any

#: The sentence a caller gets for a CSAM-bank match.
NEUTRAL_MATCH = "refused: matches a known-media hash list"


def _is_csam(detail: object) -> bool:
    return isinstance(detail, dict) and detail.get("csam") is True


def public_verdict(verdict: dict[str, Any]) -> dict[str, Any]:
    """A copy of `Verdict.as_dict()` safe to answer: CSAM-bank facts removed."""
    out = dict(verdict)
    details = []
    messages = list(out.get("messages", []))
    for index, reason in enumerate(out.get("details", [])):
        if _is_csam(reason.get("detail")):
            reason = {"code": reason.get("code", "hash_match"), "message": NEUTRAL_MATCH}
            reason["detail"] = {}
            if index < len(messages):
                messages[index] = NEUTRAL_MATCH
        details.append(reason)
    out["details"] = details
    out["messages"] = messages
    out["matches"] = [m for m in out.get("matches", []) if not _is_csam(m)]
    return out
