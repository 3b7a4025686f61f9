"""`judge serve`'s HTTP surface: OpenAI shapes on success, JSON errors with proper codes."""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from vita_eval.judges.local import LocalJudge
from vita_eval.judges.server import JudgeHTTPServer, make_server


def call(server: JudgeHTTPServer, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(server.base_url.removesuffix("/v1") + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_models_lists_the_served_name(judge_server: JudgeHTTPServer) -> None:
    status, body = call(judge_server, "/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["tiny-qwen"]


def test_chat_accepts_vlmevalkit_text_parts(judge_server: JudgeHTTPServer) -> None:
    status, body = call(judge_server, "/v1/chat/completions", {
        "model": "tiny-qwen", "temperature": 0, "max_tokens": 2,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "Hello"}]}]})
    assert status == 200
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] in {"stop", "length"}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] <= 2


GOOD = {"model": "tiny-qwen", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.mark.parametrize(("path", "body", "raw", "status"), [
    ("/v1/chat/completions", None, b"{not json", 400),
    ("/v1/chat/completions", {**GOOD, "model": "gpt-4o"}, None, 404),
    ("/v1/chat/completions", {**GOOD, "messages": []}, None, 400),
    ("/v1/chat/completions", {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, None, 400),
    ("/v1/chat/completions", {**GOOD, "max_tokens": 0}, None, 400),
    ("/v1/chat/completions", {**GOOD, "temperature": "hot"}, None, 400),
    ("/v1/chat/completions", {**GOOD, "stream": True}, None, 400),
    ("/v1/completions", GOOD, None, 404),
])
def test_bad_requests_get_json_errors(judge_server: JudgeHTTPServer, path: str, body: Any,
                                      raw: bytes | None, status: int) -> None:
    calls = judge_server.judge.stats.calls
    got, payload = call(judge_server, path, body, raw)
    assert got == status and payload["error"]["code"] == status and payload["error"]["message"]
    assert judge_server.judge.stats.calls == calls  # nothing was generated


def test_close_hangs_up_keep_alive_clients_and_joins_handlers(local_judge: LocalJudge) -> None:
    """Handler threads that ran torch must be gone before the interpreter exits."""
    server = make_server(local_judge, model_name="tiny-qwen")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    before = set(threading.enumerate())
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps(GOOD), {"Content-Type": "application/json"})
    assert conn.getresponse().read() and conn.sock is not None  # still open: keep-alive
    handlers = [t for t in threading.enumerate() if t not in before]
    assert handlers
    server.shutdown()
    started = time.monotonic()
    server.server_close()
    thread.join(5)
    assert time.monotonic() - started < 5
    assert not any(t.is_alive() for t in handlers + [thread])
    conn.close()
