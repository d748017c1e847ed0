"""A local SODA 2.0 server: the LAPD portal's query API on 127.0.0.1.

It speaks the query subset the job uses, over real HTTP: ``$where``
(comparisons of a field with a quoted literal, joined by AND), ``$order`` (one
field, ASC/DESC), ``$limit`` (default 1,000, at most 50,000), ``$offset``, and
``$select=count(*)`` answered ``[{"count": "N"}]``. Unknown columns and other
clauses get the API's 400 error object; a closed dataset the portal's 403.
Responses carry the ``X-SODA2-Fields`` header, as the real API does. Records
are served as given (every value a string, as the portal sends them), and with
``now`` set only once published (``date_rptd`` + the publication lag).

    with soda_server({"k7nn-b2ep": records}) as server:   # sets CRIMEJOB_SODA_URL
        ...
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from crimejob.devservers.http import FakeServer

SODA_TS = "%Y-%m-%dT%H:%M:%S.000"  # the portal's floating timestamps

_CLAUSE = re.compile(r"^\s*(\w+)\s*(>=|<=|<|>|=)\s*'([^']*)'\s*$")
_OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "=": lambda a, b: a == b,
}  # fmt: skip


def _json(status: int, body) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json;charset=utf-8"}, json.dumps(body).encode()


def _error(message: str, code: str = "query.compiler.malformed") -> tuple[int, dict, bytes]:
    return _json(400, {"code": code, "error": True, "message": message})


def _comparable(value: str):
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


# What the portal answers for a dataset it has closed or removed (y8y3-fqfu: 403 since
# October 2026).
CLOSED_BODIES = {
    403: {"code": "permission_denied", "error": True,
          "message": "You do not have permission to view this dataset"},
    404: {"code": "not_found", "error": True, "message": "Dataset not found"},
    410: {"code": "gone", "error": True, "message": "This dataset has been removed"},
}  # fmt: skip


class SodaApp:
    """The request handler: datasets by id, and switches for scripted misbehaviour.

    - ``now`` and ``publication_lag``: with ``now`` set, a record is served only once
      ``date_rptd + publication_lag <= now`` (the live portal publishes reports 12-14
      days after the fact; the default lag is 13 days). Tests move ``now`` forward
      week by week; ``None`` serves everything;
    - ``closed``: ``{dataset_id: status}``, answer every request for the dataset with
      that status (403, 404 or 410) and the portal's error object;
    - ``rename``: field renames applied to every served record (a schema change);
    - ``repeat_offsets``: ``{offset: times}``, serve the previous page instead of the
      one at ``offset`` that many times (a page that repeats);
    - ``count_bias``: added to every ``count(*)`` answer (a window that lost rows);
    - ``fields_header``: send ``X-SODA2-Fields`` (the real API does).
    """

    def __init__(self, datasets: dict[str, list[dict]] | None = None):
        self.datasets: dict[str, list[dict]] = {k: list(v) for k, v in (datasets or {}).items()}
        self.now: datetime | None = None
        self.publication_lag = timedelta(days=13)
        self.closed: dict[str, int] = {}
        self.rename: dict[str, str] = {}
        self.repeat_offsets: dict[int, int] = {}
        self.count_bias = 0
        self.fields_header = True

    def add_records(self, dataset_id: str, records: list[dict]) -> None:
        self.datasets.setdefault(dataset_id, []).extend(records)

    def published(self, dataset_id: str) -> list[dict]:
        """The records of a dataset the portal serves at ``now``."""
        rows = self.datasets[dataset_id]
        if self.now is None:
            return rows
        cutoff = (self.now - self.publication_lag).strftime(SODA_TS)
        # floating timestamps of one format compare as text
        return [r for r in rows if r.get("date_rptd", "") <= cutoff]

    def _rows(self, dataset_id: str) -> list[dict]:
        rows = self.published(dataset_id)
        if self.rename:
            rows = [{self.rename.get(k, k): v for k, v in r.items()} for r in rows]
        return rows

    def __call__(self, path: str, query: dict, headers: dict) -> tuple[int, dict, bytes]:
        match = re.fullmatch(r"/resource/([a-z0-9]{4}-[a-z0-9]{4})\.json", path)
        if match and match.group(1) in self.closed:
            status = self.closed[match.group(1)]
            return _json(status, CLOSED_BODIES[status])
        if not match or match.group(1) not in self.datasets:
            return _json(404, {"code": "not_found", "error": True, "message": f"{path} not found"})
        rows = self._rows(match.group(1))
        fields = sorted(set().union(*(r.keys() for r in rows))) if rows else []
        try:
            rows = self._where(rows, fields, query.get("$where"))
        except ValueError as exc:
            return _error(str(exc))
        select = query.get("$select")
        if select is not None:
            if select.replace(" ", "").lower() != "count(*)":
                return _error(f"this fake only supports $select=count(*), not {select!r}")
            return _json(200, [{"count": str(len(rows) + self.count_bias)}])
        try:
            limit = int(query.get("$limit", "1000"))
            offset = int(query.get("$offset", "0"))
        except ValueError:
            return _error("$limit and $offset must be integers")
        if limit > 50_000:
            return _error("$limit may not exceed 50000")
        order = query.get("$order")
        if order:
            parts = order.split()
            field, direction = parts[0], (parts[1].upper() if len(parts) > 1 else "ASC")
            if field not in fields:
                return _error(f"No such column: {field}", "query.soql.no-such-column")
            rows = sorted(rows, key=lambda r: r.get(field, ""), reverse=direction == "DESC")
        if self.repeat_offsets.get(offset, 0) > 0 and offset >= limit:
            self.repeat_offsets[offset] -= 1
            offset -= limit
        body = json.dumps(rows[offset : offset + limit]).encode()
        out = {"Content-Type": "application/json;charset=utf-8"}
        if self.fields_header:
            out["X-SODA2-Fields"] = json.dumps(fields)
        return 200, out, body

    @staticmethod
    def _where(rows: list[dict], fields: list[str], where: str | None) -> list[dict]:
        if not where:
            return rows
        for clause in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE):
            match = _CLAUSE.match(clause)
            if not match:
                raise ValueError(f"could not parse $where clause {clause!r}")
            field, op, literal = match.groups()
            if field not in fields:
                raise ValueError(f"No such column: {field}")
            bound, compare = _comparable(literal), _OPS[op]
            rows = [r for r in rows if field in r and compare(_comparable(r[field]), bound)]
        return rows


class FakeSodaServer(FakeServer):
    app: SodaApp

    def resource_path(self, dataset_id: str) -> str:
        return f"/resource/{dataset_id}.json"


@contextmanager
def soda_server(
    datasets: dict[str, list[dict]] | None = None, *, set_env: bool = True
) -> Iterator[FakeSodaServer]:
    """Serve ``datasets`` (id -> records) on 127.0.0.1; points CRIMEJOB_SODA_URL at it."""
    previous = os.environ.get("CRIMEJOB_SODA_URL")
    with FakeSodaServer(SodaApp(datasets)) as server:
        if set_env:
            os.environ["CRIMEJOB_SODA_URL"] = server.url
        try:
            yield server
        finally:
            if set_env:
                if previous is None:
                    os.environ.pop("CRIMEJOB_SODA_URL", None)
                else:
                    os.environ["CRIMEJOB_SODA_URL"] = previous
