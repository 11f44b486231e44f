"""A real SMTP server on loopback for the alert tests: aiosmtpd, keeping what it receives.

`SmtpServer(port)` can be stopped and started again on the same port, so a test can play
a mail server outage and its recovery.
"""

from __future__ import annotations

import email
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)


class _Keep:
    def __init__(self, inbox: list[Received], lock: threading.Lock) -> None:
        self.inbox, self.lock = inbox, lock

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.inbox.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                       bytes(envelope.original_content or envelope.content)))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int = field(default_factory=free_port)
    inbox: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(_Keep(self.inbox, self._lock), hostname="127.0.0.1",
                                      port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self, sender: str = "cyz <alerts@cyz.test>") -> dict[str, str]:
        """The `CYZ_*` settings that send through this server."""
        return {"CYZ_SMTP_HOST": "127.0.0.1", "CYZ_SMTP_PORT": str(self.port),
                "CYZ_SMTP_SECURITY": "none", "CYZ_MAIL_FROM": sender}

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
