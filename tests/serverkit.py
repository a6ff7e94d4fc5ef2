"""`keen serve` for real, as tests start it: a uvicorn subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from helpers import KEEN_BIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, home: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(KEEN_BIN), "serve", "--port", str(self.port)],
            env={**os.environ, "KEEN_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self.stderr = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_live(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"keen serve exited {self.process.returncode}: {self.stderr}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("keen serve did not come up")

    def stop(self) -> bool:
        """Stop the server with SIGTERM; True when it shut down gracefully (uvicorn then ends by
        the same signal it was sent)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.stdout, self.stderr = self.process.communicate(timeout=30)
        return self.process.returncode in (0, -signal.SIGTERM) and "Finished server process" in self.stderr

    def kill(self) -> None:
        """`kill -9`: the server ends at once, finishing nothing."""
        self.process.kill()
        self.stdout, self.stderr = self.process.communicate(timeout=30)
