"""The one place where "this store's ruleset changed" is decided and announced.

A service that alters anything a store's compiled ruleset depends on calls
:func:`ruleset_changed` inside its transaction: the store's version is bumped
in the database (``version = version + 1``, so concurrent writers never hand
out the same number), once per transaction however many rows changed. Only
after the transaction committed is the hook called, so a publisher plugged in
there never announces a change that was rolled back. Publishing over MQTT
will be such a hook; until then the default one logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Store

log = logging.getLogger(__name__)

RulesetHook = Callable[[str], None]
_PENDING = "nahfeld.ruleset_changed"


def ruleset_changed(session: Session, store_ids: Iterable[str]) -> None:
    pending: set[str] = session.info.setdefault(_PENDING, set())
    fresh = set(store_ids) - pending
    if not fresh:
        return
    session.execute(
        update(Store)
        .where(Store.id.in_(sorted(fresh)))
        .values(ruleset_version=Store.ruleset_version + 1)
    )
    pending |= fresh


def store_ruleset_changed(store_id: str) -> None:
    """The default hook: nothing publishes yet, so say what would be."""
    log.info("ruleset of store %s changed", store_id)


def install_ruleset_hook(factory: sessionmaker[Session], hook: RulesetHook) -> None:
    """Call ``hook(store_id)`` after each commit that changed a store's ruleset."""

    def after_commit(session: Session) -> None:
        for store_id in sorted(session.info.pop(_PENDING, ())):
            try:
                hook(store_id)
            except Exception:  # the change is committed; a failed announcement must not undo it
                log.exception("ruleset hook failed for store %s", store_id)

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda session, _tx: after_rollback(session))
