"""SLA clocks of a task: response and resolution goals in business time, paused while the
task waits for the client, with a warning before each breach.

A clock is kept as instants (due and warning), computed on the tenant's business calendar
when it starts and again when it resumes: resuming gives back exactly the business time
that was left when it paused. Response is met by the first claim; resolution by the result
reaching the client (after review, when the service requires one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from bpo.work.calendar import BusinessCalendar
from bpo.work.models import Task

GOALS = ("response", "resolution")
STOPPED = {"response": "responded_at", "resolution": "resolved_at"}


@dataclass(frozen=True, slots=True)
class Crossing:
    """A goal's warning or breach that the SLA job found due."""

    goal: str  # response | resolution
    kind: str  # warning | breach
    due_at: datetime


def start_clocks(task: Task, calendar: BusinessCalendar, now: datetime, warn: Decimal) -> None:
    for goal in GOALS:
        budget = timedelta(minutes=getattr(task, f"{goal}_goal_min"))
        setattr(task, f"{goal}_due_at", calendar.add(now, budget))
        setattr(task, f"{goal}_warn_at", calendar.add(now, budget * float(warn)))


def running(task: Task) -> Iterator[str]:
    """The goals whose clock still runs (not met; paused ones included)."""
    if task.responded_at is None:
        yield "response"
    if task.resolved_at is None:
        yield "resolution"


def pause(task: Task, now: datetime) -> None:
    if task.paused_at is None:
        task.paused_at = now


def resume(task: Task, calendar: BusinessCalendar, now: datetime) -> None:
    """Move each running goal on by the business time the pause took."""
    paused = task.paused_at
    if paused is None:
        return
    for goal in running(task):
        for instant in (f"{goal}_due_at", f"{goal}_warn_at"):
            at: datetime | None = getattr(task, instant)
            if at is not None and at > paused:  # a passed instant stays where it fell
                setattr(task, instant, calendar.add(now, calendar.between(paused, at)))
    task.paused_at = None


def replan(task: Task, old: BusinessCalendar, new: BusinessCalendar, now: datetime) -> bool:
    """Lay what is left of each running clock out on a new calendar: the business time left
    under the old calendar, from now (from the pause, for a paused clock, so resuming gives
    it back exactly) on the new one. A passed instant stays where it fell. True if moved."""
    start = task.paused_at or now
    moved = False
    for goal in running(task):
        for instant in (f"{goal}_due_at", f"{goal}_warn_at"):
            at: datetime | None = getattr(task, instant)
            if at is None or at <= start:
                continue
            replanned = new.add(start, old.between(start, at))
            if replanned != at:
                setattr(task, instant, replanned)
                moved = True
    return moved


def meet(task: Task, goal: str, now: datetime) -> None:
    """Stop a goal's clock: met if it stopped by its due instant."""
    if getattr(task, STOPPED[goal]) is not None:
        return
    setattr(task, STOPPED[goal], now)
    due: datetime | None = getattr(task, f"{goal}_due_at")
    setattr(task, f"{goal}_met", due is None or now <= due)


def crossings(task: Task, now: datetime) -> list[Crossing]:
    """Warnings and breaches due by `now` that were not raised yet; marks them raised.

    Marking happens in the caller's transaction on the locked task, so each is raised once.
    """
    found: list[Crossing] = []
    if task.paused_at is not None:
        return found
    for goal in running(task):
        due: datetime | None = getattr(task, f"{goal}_due_at")
        warn: datetime | None = getattr(task, f"{goal}_warn_at")
        if due is not None and now >= due and getattr(task, f"{goal}_breached_at") is None:
            setattr(task, f"{goal}_breached_at", now)
            found.append(Crossing(goal, "breach", due))
        elif (
            warn is not None
            and now >= warn
            and getattr(task, f"{goal}_warned_at") is None
            and getattr(task, f"{goal}_breached_at") is None
        ):
            setattr(task, f"{goal}_warned_at", now)
            found.append(Crossing(goal, "warning", due or warn))
    return found


def next_check(task: Task) -> datetime | None:
    """When the SLA job must look at the task next (None while paused or when all is met)."""
    if task.paused_at is not None:
        return None
    pending: list[datetime] = []
    for goal in running(task):
        if getattr(task, f"{goal}_breached_at") is not None:
            continue
        warned = getattr(task, f"{goal}_warned_at") is not None
        instant = getattr(task, f"{goal}_due_at" if warned else f"{goal}_warn_at")
        if instant is not None:
            pending.append(instant)
    return min(pending, default=None)


def queue_due(task: Task, goal: str) -> datetime | None:
    """A goal's due instant as the inbox sorts by it: none once met or while paused."""
    if task.paused_at is not None or goal not in running(task):
        return None
    due: datetime | None = getattr(task, f"{goal}_due_at")
    return due
