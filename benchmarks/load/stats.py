"""What the mixed load records per operation: answers by status, latencies, error samples.

An answer is an error when its status is not one the operation expects (a 204 from
claim-next on an empty queue is expected: counted apart as "empty"), when the connection
failed (status 0), or when a check on the body failed (a download that differs from what
was uploaded: status kept, counted as an error). Every distinct (status, first line of the
body) is kept as a sample, up to a few per operation, with the request that got it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

SAMPLES_PER_OP = 4


@dataclass
class OpStats:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    empty: int = 0  # expected answers that did no work (claim-next: no task)
    samples: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # of 5xx answers
    seen: set[str] = field(default_factory=set)  # (status, first line) of the samples

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return self.count - self.errors

    def ms(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


@dataclass
class Recorder:
    ops: dict[str, OpStats] = field(default_factory=dict)
    actions: Counter[str] = field(default_factory=Counter)  # mix entries started
    seconds: float = 0.0

    def op(self, name: str) -> OpStats:
        if name not in self.ops:
            self.ops[name] = OpStats()
        return self.ops[name]

    def record(
        self,
        name: str,
        request: str,
        status: int,
        seconds: float,
        *,
        error: bool,
        body: bytes = b"",
        why: str = "",
    ) -> None:
        stats = self.op(name)
        stats.statuses[status] += 1
        stats.latencies.append(seconds)
        if not error:
            return
        stats.errors += 1
        text = why or body[:600].decode(errors="replace")
        if status >= 500:
            stats.request_ids.append(_request_id(body))
        first = f"{status} {text.splitlines()[0][:120] if text else ''}"
        if len(stats.samples) < SAMPLES_PER_OP and first not in stats.seen:
            stats.seen.add(first)
            stats.samples.append(f"{request} -> {status}: {text[:600]}")

    @property
    def requests(self) -> int:
        return sum(s.count for s in self.ops.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.ops.values())


def _request_id(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    return str(answer.get("request_id", "")) if isinstance(answer, dict) else ""
