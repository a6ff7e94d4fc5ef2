"""A real HTTP server on 127.0.0.1 that plays queued provider responses to the real SDK clients.

Tests queue what the provider should answer (JSON, a Server-Sent Events stream written in
chunks, an error status with headers, a stream cut off mid-way) and then assert on what the SDK
sent (`requests`). Nothing inside the SDKs is replaced: the client speaks real HTTP to this server.

Run as a script it is the benchmark's provider (`bench/step_overhead.py --provider anthropic`):
it answers every call with a streamed tool call and never parses the request, so the time it
takes is the same at step 5 and step 5,000.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One queued response.

    `chunks` are written one by one with chunked transfer encoding (a real stream); `body` is
    sent whole with a content length. `drop_after` cuts the connection abruptly (TCP reset)
    after that many chunks instead of finishing the stream.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    drop_after: int | None = None
    delay: float = 0.0  # seconds to wait before answering (to provoke client timeouts)
    chunk_pause: float = 0.0  # seconds between streamed chunks


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text when it is not JSON


def json_reply(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(body).encode(),
    )


def error_reply(
    status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None
) -> Reply:
    """An error in the Anthropic envelope (OpenAI's SDK reads the same `error.message`)."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return json_reply(body, status=status, headers=headers)


def sse_reply(text: str, *, chunk_size: int = 200, drop_after: int | None = None) -> Reply:
    """A text/event-stream body written in chunks of `chunk_size` bytes."""
    data = text.encode()
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    return Reply(
        headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        chunks=chunks,
        drop_after=drop_after,
    )


def sse_events(events: list[dict[str, Any]], *, named: bool = True) -> str:
    """Serialise events as SSE: `event: <type>` lines (Anthropic) or bare `data:` lines (OpenAI)."""
    out = []
    for event in events:
        prefix = f"event: {event['type']}\n" if named else ""
        out.append(f"{prefix}data: {json.dumps(event)}\n\n")
    return "".join(out)


def openai_sse(chunks: list[dict[str, Any]]) -> str:
    """A chat-completions stream: one `data:` line per chunk, then `[DONE]`."""
    return sse_events(chunks, named=False) + "data: [DONE]\n\n"


def anthropic_message_events(message: dict[str, Any], *, piece: int = 12) -> list[dict[str, Any]]:
    """The stream events the Messages API sends for `message` (a complete non-streamed reply).

    Text, thinking and tool input are split into `piece`-character deltas; the usage is reported
    at the start (input side) and in `message_delta` (output), as the real API does.
    """
    usage = message.get("usage")
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    if usage is not None:
        start["usage"] = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block, piece))
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": None},
    }
    if usage is not None:
        delta["usage"] = {"output_tokens": usage["output_tokens"]}
    events.append(delta)
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any], piece: int) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        start, deltas = (
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": t} for t in _pieces(block["text"], piece)],
        )
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": t} for t in _pieces(block["thinking"], piece)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        raw = json.dumps(block["input"]) if block["input"] else ""
        deltas = [{"type": "input_json_delta", "partial_json": t} for t in _pieces(raw, piece) or [""]]
    else:
        start, deltas = block, []
    events = [{"type": "content_block_start", "index": index, "content_block": start}]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    events.append({"type": "content_block_stop", "index": index})
    return events


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe behind: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeProviderServer:
    """Serves queued `Reply`s in order, whatever the path; records every request it receives.

    With `answer`, requests are not recorded (nor their bodies parsed) and the reply to request
    number n (from 0) is `answer(n)` once the queue is empty."""

    def __init__(self, answer: Callable[[int], Reply] | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.answered = 0
        self._answer = answer
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def _next(self, request: RecordedRequest | None) -> Reply:
        with self._lock:
            if request is not None:
                self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
            if self._answer is not None:
                self.answered += 1
                return self._answer(self.answered - 1)
        # A non-retryable status so that a test that forgot to queue fails at once.
        return error_reply(418, "invalid_request_error", "fake provider server: no response queued")


def _make_handler(server: FakeProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked transfer encoding, like the real APIs
        disable_nagle_algorithm = True  # small stream writes go out at once, not after a delayed ACK

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            reply = server._next(None if server._answer else self._recorded(raw))
            if reply.delay:
                time.sleep(reply.delay)
            if reply.chunks is None:
                self._send_whole(reply)
            else:
                self._send_chunks(reply)

        def _recorded(self, raw: bytes) -> RecordedRequest:
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            return RecordedRequest(self.command, self.path, headers, body)

        def _send_whole(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _send_chunks(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            assert reply.chunks is not None
            for number, chunk in enumerate(reply.chunks):
                if reply.drop_after is not None and number >= reply.drop_after:
                    self._reset_connection()
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                if reply.chunk_pause:
                    time.sleep(reply.chunk_pause)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _reset_connection(self) -> None:
            """Close the socket with a TCP reset, as a dropped network connection looks."""
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler


def anthropic_step(number: int, *, last: bool) -> Reply:
    """The streamed reply of a benchmark step: a line of text and one tool call."""
    call = (
        {"name": "report_complete", "input": {"summary": "benchmark done"}}
        if last
        else {"name": "continue_work", "input": {"next_action": f"step {number + 1}"}}
    )
    message = {
        "id": f"msg_bench_{number}",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [
            {"type": "text", "text": "Carrying on with the plan."},
            {"type": "tool_use", "id": f"toolu_bench_{number}", **call},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 1_000, "output_tokens": 60},
    }
    return sse_reply(sse_events(anthropic_message_events(message, piece=1_000)), chunk_size=4_096)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve benchmark steps over the Anthropic Messages stream.")
    parser.add_argument("--steps", type=int, required=True, help="the last step answers report_complete")
    args = parser.parse_args()
    server = FakeProviderServer(answer=lambda n: anthropic_step(n, last=n + 1 >= args.steps))
    print(server.url, flush=True)
    server._httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
