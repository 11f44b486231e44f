"""Where alert mails go: an SMTP server (`CYZ_SMTP_*`), or a local Maildir (`cyz demo`)."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from pathlib import Path

from cyz.settings import Settings

# Ports a security mode usually means when CYZ_SMTP_PORT is not set.
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class MailError(RuntimeError):
    """A mail could not be handed over; the message is one line, without secrets."""


class ServerDown(MailError):
    """The mail server cannot be reached at all: no mail can go this run."""


class SmtpTransport:
    """One connection per batch of mails, opened lazily, closed by `close()`."""

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise MailError("CYZ_SMTP_HOST is not set: alert mails have no server to go to")
        if not settings.mail_from:
            raise MailError("CYZ_MAIL_FROM is not set: alert mails need a sender address")
        self.settings = settings
        self.sender = settings.mail_from
        self.host = settings.smtp_host
        self.port = settings.smtp_port or DEFAULT_PORTS[settings.smtp_security]
        self._smtp: smtplib.SMTP | None = None

    def describe(self) -> str:
        return f"smtp://{self.host}:{self.port} ({self.settings.smtp_security})"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.smtp_security == "ssl":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=s.smtp_timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=s.smtp_timeout)
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
        except (OSError, smtplib.SMTPException) as exc:
            raise ServerDown(f"cannot reach the mail server {self.describe()}: {_line(exc)}") from None
        return smtp

    def send(self, message: bytes, recipients: list[str]) -> list[str]:
        """Hand over one mail; returns the recipients the server refused (the others
        got it, so it must not be sent again)."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            refused = self._smtp.sendmail(self.sender, recipients, message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"every recipient was refused: {', '.join(exc.recipients)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise MailError(f"the mail server {self.describe()} did not take the mail: "
                            f"{_line(exc)}") from None
        return sorted(refused)

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._smtp = None


class MaildirTransport:
    """Mails into a local Maildir (`cyz demo`; any mail client reads one)."""

    sender = "cyz <cyz@localhost>"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box = mailbox.Maildir(self.path, create=True)

    def describe(self) -> str:
        return f"Maildir {self.path}"

    def send(self, message: bytes, recipients: list[str]) -> list[str]:
        self._box.add(message)
        return []

    def close(self) -> None:
        self._box.close()


def _line(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{exc.smtp_code} {' '.join(text.split())}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}" if str(exc) else type(exc).__name__
