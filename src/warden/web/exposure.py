"""Exposure: what Warden never writes to a log.

What `warden serve` refuses to open to the network is a settings check, in
services/exposure.py.

pict-rs 0.4 can send the hook's secret only in the URL (`?secret=`), which an
access log would keep; `SecretRedaction` rewrites it before any handler sees
the record.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SecretRedaction", "redact", "redact_secrets_in_logs"]


#: `secret=<value>` in a query string, up to the next separator.
SECRET_IN_URL = re.compile(r"(?i)(\bsecret=)[^&\s\"']*")


def redact(text: str) -> str:
    return SECRET_IN_URL.sub(r"\1[redacted]", text)


class SecretRedaction(logging.Filter):
    """Rewrites `secret=...` in a record's message and arguments (uvicorn's access log
    passes the path with its query string as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def redact_secrets_in_logs() -> None:
    """Attach the redaction to uvicorn's access logger and to every handler that
    writes Warden's or uvicorn's records (a logger's own filter does not see records
    of its children, a handler's does)."""
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error")
    targets: list[logging.Filterer] = [logging.getLogger("uvicorn.access")]
    for name in names:
        targets.extend(logging.getLogger(name).handlers)
    for target in targets:
        if not any(isinstance(f, SecretRedaction) for f in target.filters):
            target.addFilter(SecretRedaction())
