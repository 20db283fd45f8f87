"""Outgoing mail over SMTP (BPO_SMTP_URL), sent from jobs, never from a request.

Without a server configured the message is written to the log: the way to read an invite
while trying bpo out locally. Outside development that is a warning, since the recipient
never gets it.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import structlog

log = structlog.get_logger("bpo.mail")
TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


class MailNotSent(Exception):
    """The server refused or could not be reached: the job retries."""


async def send_mail(smtp_url: str | None, sender: str, mail: Mail, *, development: bool) -> None:
    if smtp_url is None:
        if development:
            log.info("mail_not_sent_logged", to=mail.to, subject=mail.subject, text=mail.text)
        else:
            log.warning("mail_not_configured", to=mail.to, subject=mail.subject)
        return
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, mail.to, mail.subject
    message.set_content(mail.text)
    await asyncio.to_thread(_deliver, smtp_url, message)


def _deliver(smtp_url: str, message: EmailMessage) -> None:
    parts = urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    try:
        if parts.scheme == "smtps":
            context = ssl.create_default_context()
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=TIMEOUT_S, context=context
            )
        else:
            server = smtplib.SMTP(host, parts.port or 25, timeout=TIMEOUT_S)
        with server:
            server.ehlo()
            if parts.scheme == "smtp" and server.has_extn("starttls"):
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if parts.username:
                server.login(unquote(parts.username), unquote(parts.password or ""))
            server.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailNotSent(f"{type(exc).__name__}: {exc}") from exc
