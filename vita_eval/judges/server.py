"""``vita-eval judge serve``: a LocalJudge behind an OpenAI-compatible HTTP endpoint.

Lets several scoring jobs (or VLMEvalKit itself, via ``OPENAI_API_BASE`` and
``LOCAL_LLM``) share one loaded judge. Standard library ``ThreadingHTTPServer``:
requests are parsed concurrently, while generation is serialised by the
LocalJudge's lock (one model, one stream). Every error is an OpenAI-style JSON
body with a proper status code, so clients report the reason instead of
failing silently. Only text content is supported.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from vita_eval.judges.local import LocalJudge

log = logging.getLogger(__name__)

DEFAULT_PORT = 23333  # the port of the LMDeploy recipe in VITA's README
MAX_BODY_BYTES = 8 * 1024 * 1024
_ROLES = {"system", "user", "assistant"}


class ApiError(Exception):
    """A request the server refuses, with its HTTP status and OpenAI error type."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class JudgeHTTPServer(ThreadingHTTPServer):
    """Holds the judge, the served model name and a request counter.

    ``server_close`` hangs up idle keep-alive connections and joins every
    handler thread: a thread that ran torch must not outlive the interpreter
    (torch's CPU thread pool then aborts the process at exit).
    """

    daemon_threads = False

    def __init__(self, address: tuple[str, int], judge: LocalJudge, model_name: str) -> None:
        super().__init__(address, _Handler)
        self.judge = judge
        self.model_name = model_name
        self.request_count = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def count_request(self) -> None:
        with self._lock:
            self.request_count += 1

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # a handler waiting for the next request sees EOF
            except OSError:
                pass
        super().server_close()  # joins the handler threads


def _text_of(content: Any) -> str:
    """A message's text: a string or OpenAI's list of ``{"type": "text"}`` parts (VLMEvalKit sends those)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise ApiError(400, "only text content parts are supported")
        return "".join(p["text"] for p in content)
    raise ApiError(400, "message content must be a string or a list of text parts")


def _parse_messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty list")
    messages = []
    for msg in raw:
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
            raise ApiError(400, f"each message needs a role in {sorted(_ROLES)}")
        messages.append({"role": msg["role"], "content": _text_of(msg.get("content"))})
    return messages


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ApiError(400, f"'{name}' must be a number in [{lo:g}, {hi:g}]")
    return float(value)


def parse_chat_request(body: Any, model_name: str) -> tuple[list[dict[str, str]], float, int]:
    """Validate a chat-completions body; returns (messages, temperature, max_tokens)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") != model_name:
        raise ApiError(404, f"the model {body.get('model')!r} does not exist; this server serves "
                            f"{model_name!r}", "model_not_found")
    if body.get("stream") or body.get("n", 1) != 1:
        raise ApiError(400, "'stream' and 'n' > 1 are not supported")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)  # OpenAI's default
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = 2048
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "'max_tokens' must be a positive integer")
    return _parse_messages(body.get("messages")), temperature, max_tokens


class _Handler(BaseHTTPRequestHandler):
    server: JudgeHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

    def do_GET(self) -> None:
        self.server.count_request()
        if urlsplit(self.path).path.rstrip("/") != "/v1/models":
            return self._send_error(ApiError(404, f"no route GET {self.path}", "not_found"))
        model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "vita-eval"}
        self._send(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        self.server.count_request()
        try:
            body = self._read_json()  # read first, so the connection stays in sync on errors
            if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
                raise ApiError(404, f"no route POST {self.path}", "not_found")
            messages, temperature, max_tokens = parse_chat_request(body, self.server.model_name)
        except ApiError as err:
            return self._send_error(err)
        try:
            gen, finish = self.server.judge.chat(messages, temperature=temperature, max_tokens=max_tokens)
        except Exception as err:  # report, keep serving
            log.exception("generation failed")
            return self._send_error(ApiError(500, f"generation failed: {type(err).__name__}: {err}",
                                              "server_error"))
        self._send(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": self.server.model_name,
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": gen.text}}],
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                      "total_tokens": gen.prompt_tokens + gen.completion_tokens},
        })

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would poison the next request
            raise ApiError(413, f"Content-Length must be between 0 and {MAX_BODY_BYTES}")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiError(400, f"invalid JSON: {err}") from None

    def _send_error(self, err: ApiError) -> None:
        self._send(err.status, {"error": {"message": err.message, "type": err.kind, "code": err.status}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def make_server(judge: LocalJudge, host: str = "127.0.0.1", port: int = 0, *,
                model_name: str | None = None) -> JudgeHTTPServer:
    """A bound, not yet running server (port 0 = any free port); run ``serve_forever``."""
    return JudgeHTTPServer((host, port), judge, model_name or judge.model_dir.name)


def serve(model_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
          model_name: str | None = None, device: str | None = None) -> None:
    """Load the checkpoint and serve until interrupted."""
    server = make_server(LocalJudge(model_dir, device=device), host, port, model_name=model_name)
    log.warning("serving judge %r at %s (set OPENAI_API_BASE to it and LOCAL_LLM=%s)",
                server.model_name, server.base_url, server.model_name)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vita-eval judge serve``."""
    parser.add_argument("--model", required=True, help="Qwen2/Qwen2.5 checkpoint directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--served-model-name", default=None,
                        help="model id clients must send (default: the directory name)")
    parser.add_argument("--device", default=None, help="e.g. cuda:0 (default: cuda if available)")


def main(args: argparse.Namespace) -> int:
    serve(args.model, args.host, args.port, model_name=args.served_model_name, device=args.device)
    return 0
