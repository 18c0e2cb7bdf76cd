"""A webhook receiver on loopback for tests: records every request it gets, and answers each
path by a script (a status code per request, or "hang": hold the request until released)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: held, the sender went away first


@dataclass
class Receiver:
    port: int = 0
    scripts: dict[str, list[int | str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    holding: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: list[int | str]) -> None:
        with self.lock:
            self.scripts[path] = list(answers)

    def at(self, path: str, answered: bool = True) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path and (r.answered is not None or not answered)]

    def _next(self, path: str) -> int | str:
        with self.lock:
            script = self.scripts.get(path) or []
            return script.pop(0) if script else 200


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = receiver._next(self.path)
            headers = {k: v for k, v in self.headers.items()}
            if answer == HANG:
                with receiver.lock:
                    receiver.holding.append(self.path)
                receiver.release.wait(60)
                with receiver.lock:
                    receiver.received.append(Received(self.path, headers, body, None))
                return  # no answer: the sender is gone (killed) by now
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body, int(answer)))
            self.send_response(int(answer))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
