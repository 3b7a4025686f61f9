"""A judge for any OpenAI-compatible endpoint (OpenAI, vLLM, LMDeploy, SGLang, ``judge serve``).

Retry semantics follow VLMEvalKit's ``BaseAPI.generate``: a random 0-0.5 s
sleep first, ``retry`` tries, a random 0-2*``wait`` s sleep after a failed
try, and an empty reply counts as a failure. Unlike VLMEvalKit, only 429, 5xx,
connection errors and timeouts are retried (a 401 will not heal), the
openai client's own retries are off so the counts are ours, and the reason of
the last failure is kept in ``last_error`` and logged, never swallowed. A reply
that is not a chat completion (an HTML error page or broken JSON with status 200
from a proxy) is a failed try like any other. Every try is bounded by the
session's time budget, and a probe that failed is not repeated for later suites.
The key (``OPENAI_API_KEY``) is redacted from every message we build, and from
every log record of the process (with or without its ``sk-`` prefix).
"""
from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import openai

from vita_eval.judges.cache import CachedJudge, Generation, JudgeCache

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
_CHAT_SUFFIX = "/chat/completions"
_KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_\-*]{3,}")
_PROBE_MAX_TOKENS = 16


def normalize_base_url(url: str) -> str:
    """Accept both a ``.../v1`` base and VLMEvalKit's full ``.../chat/completions`` URL."""
    url = url.strip().rstrip("/")
    return url[: -len(_CHAT_SUFFIX)] if url.endswith(_CHAT_SUFFIX) else url


def public_url(url: str) -> str:
    """The URL without user info, query or fragment, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_MIN_SECRET = 8  # shorter "keys" (EMPTY, a local server's dummy) are not worth scrubbing everywhere


def _secret_forms(secret: str) -> list[str]:
    """The key and its body without the `sk-` prefix (some servers echo only that), longest first."""
    forms = [secret] + ([secret[3:]] if secret.startswith("sk-") else [])
    return [f for f in forms if len(f) >= _MIN_SECRET]


def redact(text: str, secret: str | None) -> str:
    """Remove the key (also without its `sk-` prefix), and anything that looks like one."""
    for form in _secret_forms(secret or ""):
        text = text.replace(form, "***")
    return _KEY_LIKE.sub("sk-***", text)


_log_secrets: set[str] = set()
_log_lock = threading.Lock()


def redact_logs(secret: str) -> None:
    """Scrub `secret` from every log record this process creates (openai's and httpx's loggers too).

    A record factory sees records of every logger, including ones created after this call,
    where a filter on one logger would miss its children and handlers added later.
    """
    if not _secret_forms(secret):
        return
    with _log_lock:
        if not _log_secrets:
            previous = logging.getLogRecordFactory()

            def factory(*args: object, **kwargs: object) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                try:
                    message = record.getMessage()
                except Exception:  # a bad format string: logging reports it when the record is emitted
                    return record
                clean = message
                for known in list(_log_secrets):
                    clean = redact(clean, known)
                if clean != message:
                    record.msg, record.args = clean, ()
                return record

            logging.setLogRecordFactory(factory)
        _log_secrets.add(secret)


class _Failure(Exception):
    """One failed try; ``retryable`` says whether trying again can help."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class OpenAIJudge(CachedJudge):
    """Chat-completions judge with a concurrency limit, retries, disk cache and usage stats."""

    def __init__(self, model: str, base_url: str = OPENAI_BASE_URL, *, cache: JudgeCache | None = None,
                 max_concurrency: int = 32, retry: int = 6, timeout: float = 600.0, wait: float = 1.0,
                 probe_tries: int = 5, sleep: Callable[[float], None] = time.sleep) -> None:
        if retry < 1 or max_concurrency < 1 or probe_tries < 1:
            raise ValueError("retry, max_concurrency and probe_tries must be >= 1")
        base = normalize_base_url(base_url)
        self._key = os.environ.get("OPENAI_API_KEY", "")
        if not self._key and urlsplit(base).hostname == "api.openai.com":
            raise ValueError(f"OPENAI_API_KEY is not set; judge {model!r} at {public_url(base)} needs it")
        redact_logs(self._key)
        super().__init__(f"{model} @ {public_url(base)}", cache or JudgeCache())
        self.model = model
        self.max_concurrency = max_concurrency
        self.retry, self.timeout, self.wait, self.probe_tries = retry, timeout, wait, probe_tries
        self.last_error: str | None = None
        self._sleep = sleep
        self._rng = random.Random()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # Local servers ignore the key but the client insists on one.
        self._client = openai.OpenAI(api_key=self._key or "EMPTY", base_url=base,
                                     max_retries=0, timeout=timeout)

    def _bounded(self, timeout: float) -> float | None:
        """`timeout` cut to the session's budget; None when the budget is spent."""
        left = self.time_left()
        if left is None:
            return timeout
        if left <= 0:
            self.last_error = f"judge time budget of {self.budget_s:g} s spent"
            return None
        return min(timeout, left)

    def _generate(self, prompt: str, temperature: float, max_tokens: int) -> Generation | None:
        self._sleep(self._rng.random() * 0.5)
        for attempt in range(1, self.retry + 1):
            timeout = self._bounded(self.timeout)
            if timeout is None:
                break
            try:
                return self._request(prompt, temperature, max_tokens, timeout)
            except _Failure as fail:
                self._note_failure(fail, attempt, self.retry)
                if not fail.retryable:
                    break
                if attempt < self.retry:
                    self._sleep(self._rng.random() * 2 * self.wait)
        log.warning("judge %s gave no answer: %s", self.identity, self.last_error)
        return None

    def working(self) -> bool:
        """VLMEvalKit's probe: 'hello' up to ``probe_tries`` times, timeout <= 120 s, never cached.

        A failed probe counts as one failure and is remembered by every session of this judge,
        so a dead endpoint costs the run one probe, not one per suite."""
        if "dead" in self._shared:
            self.last_error = self._shared["dead"]
            self._record(failures=1)
            return False
        for attempt in range(1, self.probe_tries + 1):
            timeout = self._bounded(min(self.timeout, 120.0))
            if timeout is None:
                break
            try:
                self._request("hello", 0.0, _PROBE_MAX_TOKENS, timeout)
                return True
            except _Failure as fail:
                self._note_failure(fail, attempt, self.probe_tries)
                if not fail.retryable:
                    break
                if attempt < self.probe_tries:
                    self._sleep(self._rng.random() * 2 * self.wait)
        log.warning("judge %s is not working: %s", self.identity, self.last_error)
        self._shared["dead"] = self.last_error
        self._record(failures=1)  # the probe prompt failed: usage stats agree with the "not working" note
        return False

    def _note_failure(self, fail: _Failure, attempt: int, tries: int) -> None:
        self.last_error = redact(fail.reason, self._key)
        log.info("judge %s try %d/%d failed: %s", self.identity, attempt, tries, self.last_error)

    def _request(self, prompt: str, temperature: float, max_tokens: int, timeout: float) -> Generation:
        """Send one request; raise ``_Failure`` for anything but a non-empty reply."""
        self._record(calls=1)
        with self._slots:
            try:
                resp = self._client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}],
                    temperature=temperature, max_tokens=max_tokens, timeout=timeout)
            except openai.APIStatusError as err:
                code = err.status_code
                raise _Failure(err.message, code == 429 or code >= 500) from None  # "Error code: N - ..."
            except openai.APITimeoutError:
                raise _Failure(f"timed out after {timeout:g} s", True) from None
            except openai.APIConnectionError as err:
                raise _Failure(f"connection error: {err}", True) from None
            except openai.OpenAIError as err:  # e.g. a malformed body from a flaky proxy
                raise _Failure(f"{type(err).__name__}: {err}", True) from None
            except ValueError as err:  # status 200 with a body that is not JSON (JSONDecodeError)
                raise _Failure(f"reply is not JSON ({type(err).__name__}: {err})", True) from None
        gen = _generation(resp)
        self._record(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens)
        if not gen.text.strip():
            raise _Failure("empty reply", True)
        return gen


def _generation(resp: object) -> Generation:
    """The reply's text and usage; `_Failure` when it is not a chat completion (e.g. a str of HTML)."""
    try:
        choices, usage = resp.choices, resp.usage  # type: ignore[attr-defined]
        text = (choices[0].message.content or "") if choices else ""
        return Generation(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0)
    except (AttributeError, IndexError, TypeError):
        raise _Failure(f"reply is not a chat completion: {str(resp)[:120]!r}", True) from None
