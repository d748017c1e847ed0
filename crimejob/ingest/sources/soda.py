"""A SODA (Socrata Open Data API 2.0) client for one thing: every record of a report-date window.

The query subset used, as the real API speaks it:

- ``$where=date_rptd >= '2024-01-01T00:00:00' AND date_rptd < '2024-01-08T00:00:00'``
  (floating timestamps, LA wall clock; the end bound is exclusive);
- ``$order=<natural key>`` so pages are stable, ``$limit``/``$offset`` paging;
- ``$select=count(*)`` with the same ``$where``, answered ``[{"count": "N"}]``,
  to check that the window arrived whole;
- ``X-App-Token`` header when ``settings.soda_app_token`` is set.

Transport failures (429, 5xx, 202, timeouts, truncated bodies) are retried by
:class:`crimejob.ingest.sources.http.HttpClient`. On top of that the window is checked:
a page that repeats records already fetched, or a total that differs from the
count, means the dataset moved under us (or the server misbehaved), so the
whole window is fetched again, a few times at most, then a :class:`SourceError`.
Records are never silently duplicated or lost. A required field that no record
of a page carries (and that the ``X-SODA2-Fields`` header, when sent, does not
list) means the dataset renamed it: that is a SourceError naming the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from crimejob.config import Settings, get_settings
from crimejob.errors import SourceError
from crimejob.ingest.sources.http import HttpClient

log = logging.getLogger(__name__)

SODA_MAX_LIMIT = 50_000  # the most rows one request may ask for on a 2.0 endpoint


class WindowInconsistent(Exception):
    """The pages of a window do not add up (a repeat, or a count mismatch): fetch again."""


@dataclass(frozen=True)
class WindowQuery:
    """Which records of which dataset: report dates in [start, end], both inclusive."""

    dataset_id: str
    date_field: str
    start: date
    end: date
    order: str
    key_field: str
    required_fields: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        upper = self.end + timedelta(days=1)
        return (
            f"{self.date_field} >= '{self.start.isoformat()}T00:00:00' AND "
            f"{self.date_field} < '{upper.isoformat()}T00:00:00'"
        )


class SodaClient:
    """Fetch whole report-date windows from SODA datasets at ``settings.soda_url``."""

    def __init__(
        self,
        settings: Settings | None = None,
        http: HttpClient | None = None,
        page_size: int | None = None,
        window_attempts: int = 3,
    ):
        self.settings = settings or get_settings()
        headers = {"Accept": "application/json"}
        if self.settings.soda_app_token:
            headers["X-App-Token"] = self.settings.soda_app_token
        self.http = http or HttpClient(self.settings, headers=headers)
        if http is not None:
            self.http.session.headers.update(headers)
        self.page_size = min(page_size or self.settings.soda_page_size, SODA_MAX_LIMIT)
        self.window_attempts = window_attempts

    def resource_url(self, dataset_id: str) -> str:
        return f"{self.settings.soda_url}/resource/{dataset_id}.json"

    def count(self, dataset_id: str, where: str) -> int:
        """How many records match ``where`` (``$select=count(*)``)."""
        body = self.http.get_json(
            self.resource_url(dataset_id), {"$select": "count(*)", "$where": where}
        )
        try:
            (row,) = body
            (value,) = row.values()
            return int(value)
        except (TypeError, ValueError) as exc:
            raise SourceError(
                f"{dataset_id}: count query answered {json.dumps(body)[:200]}, "
                'expected [{"count": "N"}]'
            ) from exc

    def fetch_window(self, query: WindowQuery) -> list[dict]:
        """Every record of the window, verified complete and free of repeats."""
        retrying = Retrying(
            stop=stop_after_attempt(self.window_attempts),
            # A dataset being republished settles in seconds: wait before asking again.
            wait=wait_exponential_jitter(initial=1.0, max=self.settings.http_backoff_max_s),
            retry=retry_if_exception_type(WindowInconsistent),
            reraise=False,
        )
        try:
            return retrying(self._fetch_once, query)
        except RetryError as exc:
            raise SourceError(
                f"{query.dataset_id}: report dates {query.start}..{query.end} did not arrive "
                f"whole after {self.window_attempts} attempts: {exc.last_attempt.exception()}"
            ) from exc

    def _fetch_once(self, query: WindowQuery) -> list[dict]:
        expected = self.count(query.dataset_id, query.where)
        records: list[dict] = []
        seen: set[str] = set()
        offset = 0
        while True:
            page = self._page(query, offset)
            for record in page:
                key = record.get(query.key_field)
                if key is None:
                    continue
                if key in seen:
                    raise WindowInconsistent(
                        f"the page at offset {offset} repeats {query.key_field} {key!r}, "
                        "already fetched (the dataset changed while paging, or $offset "
                        "was ignored)"
                    )
                seen.add(key)
            records.extend(page)
            if len(records) > expected:
                raise WindowInconsistent(
                    f"{len(records)} records arrived, more than the {expected} counted"
                )
            if len(page) < self.page_size:
                break
            offset += self.page_size
        if len(records) != expected:
            raise WindowInconsistent(
                f"{len(records)} records arrived but the count query says {expected}"
            )
        log.info(
            "%s: %d records reported %s..%s", query.dataset_id, len(records), query.start, query.end
        )
        return records

    def _page(self, query: WindowQuery, offset: int) -> list[dict]:
        params = {
            "$where": query.where,
            "$order": query.order,
            "$limit": str(self.page_size),
            "$offset": str(offset),
        }
        url = self.resource_url(query.dataset_id)
        response = self.http.get(url, params)
        try:
            body = response.json()
        except ValueError as exc:
            # HttpClient.get retries transport faults; a 200 that is not JSON is the
            # source's fault and is retried with the whole window.
            raise WindowInconsistent(f"{url} sent a body that is not JSON: {exc}") from exc
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise SourceError(f"{url} answered {str(body)[:200]}, expected a JSON array of rows")
        check_fields(query, body, response.headers.get("X-SODA2-Fields"))
        return body


def check_fields(query: WindowQuery, page: Sequence[dict], fields_header: str | None) -> None:
    """A required field missing from the dataset's field list (``X-SODA2-Fields``), or from
    every record of a non-empty page, was renamed or dropped: fail, naming it."""
    if fields_header:
        try:
            fields = set(json.loads(fields_header))
        except ValueError:
            fields = None
        if fields is not None:
            missing = [f for f in query.required_fields if f not in fields]
            if missing:
                raise SourceError(
                    f"{query.dataset_id}: field(s) {', '.join(missing)} not in the dataset "
                    f"(renamed?); it has {', '.join(sorted(fields))}"
                )
            return
    if not page:
        return
    present = set().union(*(r.keys() for r in page))
    missing = [f for f in query.required_fields if f not in present]
    if missing:
        raise SourceError(
            f"{query.dataset_id}: no record carries field(s) {', '.join(missing)} "
            f"(renamed?); records have {', '.join(sorted(present))}"
        )
