"""No password or secret key in a log: the bootstrap password is shown once, on a terminal.

Every other test's logs are swept at the end of the session (tests/conftest.py); these tests
check the two places that used to print the admin password: `ferry serve` and `ferry dev`.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import requests

from tests.support import leaks
from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port


def test_given_admin_password_is_not_in_the_server_log(ferry_server: FerryServer) -> None:
    log = (ferry_server.data / "server.log").read_text()
    assert "admin" in log
    assert ADMIN_PASSWORD not in log


def test_generated_admin_password_stays_out_of_the_log(tmp_path: Path) -> None:
    server = FerryServer(tmp_path / "ferry", free_port(), env={"FERRY_ADMIN_PASSWORD": ""}).start()
    try:
        stored = tmp_path / "ferry" / "admin.json"
        password = json.loads(stored.read_text())["password"]
        leaks.remember(password)
        assert stored.stat().st_mode & 0o777 == 0o600
        log = (tmp_path / "ferry" / "server.log").read_text()
        assert password not in log
        assert str(stored) in log  # it says where to find it
        token = requests.get(f"{server.url}/v2/token", auth=("admin", password), timeout=30)
        assert token.status_code == 200
    finally:
        server.stop()


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_ferry_dev_shows_the_password_on_its_terminal_and_in_no_log(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # no line wrapping
    command = ["dev", "--regions", "cn-north-4", "--base-port", str(free_port()), "--data", str(data)]
    process = subprocess.Popen(
        [sys.executable, "-m", "ferry", *command], stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    try:
        shown = _read_until(main, b"Ctrl-C stops every region", 180).decode(errors="replace")
        admin = json.loads((data / "dev.json").read_text())["admin"]
        leaks.remember(admin["password"], admin["sk"])
        assert admin["password"] in shown and admin["sk"] in shown, shown
        assert (data / "dev.json").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        os.close(main)
    logs = sorted(data.rglob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert admin["password"] not in text and admin["sk"] not in text, log
