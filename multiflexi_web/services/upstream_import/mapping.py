"""The upstream id -> our id table (models/upstream.py): what makes a second run change nothing."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import UpstreamMap


class IdMap:
    def __init__(self, source: str) -> None:
        self.source = source
        self._rows = {(m.kind, m.upstream_id): m for m in db.session.scalars(select(UpstreamMap))}

    def get(self, kind: str, upstream_id: object) -> int | None:
        found = self._rows.get((kind, str(upstream_id)))
        return found.our_id if found else None

    def put(self, kind: str, upstream_id: object, our_id: int, uuid: str | None = None) -> None:
        key = (kind, str(upstream_id))
        row = self._rows.get(key)
        if row is None:
            row = UpstreamMap(kind=kind, upstream_id=str(upstream_id), source=self.source)
            db.session.add(row)
            self._rows[key] = row
        if (row.our_id, row.upstream_uuid) != (our_id, uuid):
            row.our_id, row.upstream_uuid = our_id, uuid
