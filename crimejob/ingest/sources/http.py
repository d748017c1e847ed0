"""HTTP with retries, shared by every source client.

Retries use ``tenacity`` with exponential backoff and jitter on the failures a
public API produces while healthy: HTTP 429 (throttled), 5xx, 202 ("still
processing", SODA) and connection errors or timeouts. Anything else (a 400, a
404) fails at once. After the last attempt a :class:`SourceError` says which
URL failed and why, so the command fails loudly and writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from crimejob import __version__
from crimejob.config import Settings, get_settings
from crimejob.errors import SourceError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({202, 429, 500, 502, 503, 504})
USER_AGENT = f"crimejob/{__version__} (weekly LA crime forecasting)"


class HttpStatusError(SourceError):
    """A final, non-retryable HTTP answer (a 400, a 403, a 404...): ``status`` says which."""

    def __init__(self, message: str, status: int, url: str):
        super().__init__(message)
        self.status = status
        self.url = url


class RetryableHTTPError(Exception):
    """A response worth asking again for (429, 5xx, 202)."""

    def __init__(self, response: requests.Response):
        self.response = response
        super().__init__(f"HTTP {response.status_code} from {response.url}")


def _retryable(exc: BaseException) -> bool:
    return isinstance(
        exc, RetryableHTTPError | requests.ConnectionError | requests.Timeout
    ) or isinstance(exc, requests.exceptions.ChunkedEncodingError)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# Headers that are credentials: never sent on to another host by a redirect.
SECRET_HEADERS = ("X-App-Token",)


class _Session(requests.Session):
    """requests drops ``Authorization`` when a redirect leaves the host; this session
    drops the SODA app token the same way, so a redirect (a compromised mirror, an
    open redirect) cannot carry it to someone else."""

    def rebuild_auth(self, prepared_request, response):
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in SECRET_HEADERS:
                prepared_request.headers.pop(name, None)


class HttpClient:
    """A ``requests`` session with the job's retry policy and default headers."""

    def __init__(
        self,
        settings: Settings | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
        backoff_initial_s: float = 1.0,
    ):
        self.settings = settings or get_settings()
        self.session = _Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(headers or {})
        self.max_attempts = max_attempts or self.settings.http_max_attempts
        self.backoff_initial_s = backoff_initial_s

    def _wait(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        backoff = wait_exponential_jitter(
            initial=self.backoff_initial_s, max=self.settings.http_backoff_max_s
        )(retry_state)
        if isinstance(exc, RetryableHTTPError):
            hint = _retry_after(exc.response)
            if hint is not None:
                return min(max(hint, 0.0), self.settings.http_backoff_max_s)
        return backoff

    def get(self, url: str, params: dict[str, Any] | None = None) -> requests.Response:
        """GET with retries; returns a 200 response or raises :class:`SourceError`."""

        def attempt() -> requests.Response:
            response = self.session.get(url, params=params, timeout=self.settings.http_timeout_s)
            if response.status_code in RETRY_STATUS:
                log.warning("HTTP %s from %s, will retry", response.status_code, response.url)
                raise RetryableHTTPError(response)
            if response.status_code != 200:
                raise HttpStatusError(
                    f"HTTP {response.status_code} from {response.url}: {response.text[:300]}",
                    response.status_code,
                    response.url,
                )
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=False,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise SourceError(f"{url} failed after {self.max_attempts} attempts: {last}") from last

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode JSON; a truncated or non-JSON body is retried, then a SourceError."""

        def attempt() -> Any:
            response = self.get(url, params)
            try:
                return response.json()
            except ValueError as exc:
                raise _BadBody(f"{response.url} sent a body that is not valid JSON: {exc}") from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(
                initial=self.backoff_initial_s, max=self.settings.http_backoff_max_s
            ),
            retry=retry_if_exception(lambda e: isinstance(e, _BadBody)),
            reraise=False,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            raise SourceError(str(exc.last_attempt.exception())) from exc


class _BadBody(Exception):
    pass
