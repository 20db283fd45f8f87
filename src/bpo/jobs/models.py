"""Tables the job machinery owns."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase


class JobHeartbeat(PlatformBase):
    """One row per processed `ping` job: proof that broker, worker and database connect."""

    __tablename__ = "job_heartbeats"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    token: Mapped[str] = mapped_column(String(200), unique=True)
    worker_pid: Mapped[int] = mapped_column(Integer)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
