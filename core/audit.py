"""The audit log: every operator action, who did it and when."""

from __future__ import annotations

import getpass
import os
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.models import AuditEntry


def current_actor() -> str:
    """Who is acting: ``$CADENCE_ACTOR`` if set (e.g. by a wrapper), else the OS user."""
    actor = os.environ.get("CADENCE_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def record_action(
    session: AsyncSession,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    summary: str | None = None,
) -> None:
    """Add an audit entry to the session's transaction; over SSH, the entry's details
    name the connection (``$SSH_CONNECTION``: client address and port, server address and
    port), since the OS user alone may be shared."""
    ssh = os.environ.get("SSH_CONNECTION")
    if ssh:
        details = {**(details or {}), "ssh_connection": ssh}
    session.add(
        AuditEntry(
            at=clock.now(),
            actor=current_actor(),
            action=action,
            target=target,
            details=details,
            summary=summary,
        )
    )
