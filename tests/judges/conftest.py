"""Fixtures: a tiny random Qwen2 checkpoint with the real Qwen2.5 tokenizer, the judge
server running it on 127.0.0.1, and a scripted OpenAI-compatible endpoint for faults."""
from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from tiny_qwen import write_tiny_qwen

from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.local import LocalJudge
from vita_eval.judges.server import JudgeHTTPServer, make_server


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def local_judge(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalJudge:
    return LocalJudge(tiny_qwen_dir, cache=JudgeCache(tmp_path_factory.mktemp("local-cache")), device="cpu")


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[None]:
    """Serve in a daemon thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def judge_server(local_judge: LocalJudge) -> Iterator[JudgeHTTPServer]:
    server = make_server(local_judge, "127.0.0.1", 0, model_name="tiny-qwen")
    with running(server):
        yield server


@pytest.fixture(autouse=True)
def _judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never use a real key, base URL or LOCAL_LLM from the outer environment."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("LOCAL_LLM", raising=False)


def chat_body(text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


@dataclass
class Scripted:
    """An endpoint answering each POST with the next scripted action, then 'ok'.

    Actions: an int status (OpenAI-style error body, echoing ``error_text``),
    'ok', 'empty', 'html' (status 200, an HTML page), 'badjson' (status 200, JSON content type,
    a body that is not JSON), or ('sleep', seconds) before answering 'ok'. ``default`` answers
    once the script is used up; ``max_in_flight`` is the most requests handled at once.
    """

    actions: list[Any]
    error_text: str = "scripted failure"
    default: Any = "ok"
    count: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def next_action(self) -> Any:
        with self.lock:
            self.count += 1
            return self.actions.pop(0) if self.actions else self.default

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def _scripted_handler(script: Scripted) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            script.enter()
            try:
                self._answer(script.next_action())
            finally:
                script.leave()

        def _answer(self, action: Any) -> None:
            if isinstance(action, tuple):
                time.sleep(action[1])
                action = "ok"
            if isinstance(action, int):
                return self._send(action, {"error": {"message": script.error_text, "type": "x", "code": action}})
            if action == "html":
                return self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            if action == "badjson":
                return self._send(200, b'{"choices": [', "application/json")
            self._send(200, chat_body("" if action == "empty" else "OK answer"))

        def _send(self, status: int, payload: dict[str, Any] | bytes, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout test)
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    with ExitStack() as stack:

        def start(actions: list[Any], error_text: str = "scripted failure", default: Any = "ok") -> Scripted:
            script = Scripted(list(actions), error_text, default)
            server = ThreadingHTTPServer(("127.0.0.1", 0), _scripted_handler(script))
            server.daemon_threads = True  # a handler may still sleep (timeout test); it holds no torch state
            stack.enter_context(running(server))
            script.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
            return script

        yield start
