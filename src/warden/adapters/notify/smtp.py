"""Email through an SMTP server, with the standard library's smtplib in a thread.

One message per alert to every `mail_to` address; STARTTLS before the login when
asked (RFC 3207), a login only when a user is set. smtplib blocks, so it runs
in a worker thread with the channel's timeout; its errors become NotifyError
without the password (smtplib never puts it in an exception).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from warden.adapters.notify.message import Alert
from warden.errors import NotifyError


class SmtpMail:
    kind = "smtp"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        user: str = "",
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s

    def message(self, alert: Alert) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = f"[Warden] {alert.title}"
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(alert.plain())
        return mail

    def _send(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(mail)

    async def send(self, alert: Alert) -> None:
        if not self.recipients:
            raise NotifyError(f"{self.name}: no mail_to address")
        try:
            await asyncio.to_thread(self._send, self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"{self.name}: {type(exc).__name__}") from None
