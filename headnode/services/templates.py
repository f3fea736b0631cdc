"""Named templates: stored, listed, fetched, deleted.

A template's body is the API's Template message (as JSON); this service stores it without
looking inside, and the API layer merges it into submissions. Kept in memory, written
through the journal like everything else.
"""

from __future__ import annotations

from common.clock import Clock
from common.errors import AlreadyExists, InvalidArgument, NotFound, quote
from headnode.services.journal import Journal
from headnode.store.base import TemplateRecord

MAX_NAME = 256  # characters of a template's name


class TemplateService:
    def __init__(self, journal: Journal, clock: Clock, loaded: list[TemplateRecord]) -> None:
        self.journal = journal
        self.clock = clock
        self._templates = {t.name: t for t in loaded}

    async def create(self, name: str, body: str, owner: str, replace: bool) -> TemplateRecord:
        if not name or name != name.strip() or any(c in name for c in "/\\,\0") or len(name) > MAX_NAME:
            raise InvalidArgument(f"template name {quote(name)!r} must be 1 to {MAX_NAME} characters, without spaces "
                                  "at the ends or / \\ ,")
        if name in self._templates and not replace:
            raise AlreadyExists(f"template {name!r} already exists; delete it first or create it with replace")
        record = TemplateRecord(name, owner, self.clock.now(), body)
        await self.journal.record(templates={name: record})
        self._templates[name] = record
        return record

    def get(self, name: str) -> TemplateRecord:
        try:
            return self._templates[name]
        except KeyError:
            known = ", ".join(sorted(self._templates)[:20]) or "none"
            raise NotFound(f"template {quote(name)!r} does not exist (templates: {known}"
                           f"{' …' if len(self._templates) > 20 else ''})") from None

    def list(self) -> list[TemplateRecord]:
        return [self._templates[n] for n in sorted(self._templates)]

    async def delete(self, name: str) -> None:
        self.get(name)
        await self.journal.record(templates={name: None})
        del self._templates[name]
