"""A client firm's webhook receiver: a real HTTP server on 127.0.0.1, answering from a script."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: list[int]  # answers in order; the last one repeats
    requests: list[Received] = field(default_factory=list)


@contextmanager
def webhook_receiver(*statuses: int, host: str = "127.0.0.1") -> Iterator[Receiver]:
    answers = list(statuses) or [200]
    lock = threading.Lock()
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = answers[min(len(receiver.requests), len(answers)) - 1]
            reply = b'{"received": true}' if status < 300 else b'{"error": "try later"}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    receiver = Receiver(f"http://{host}:{server.server_address[1]}/hooks/bpo", answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
