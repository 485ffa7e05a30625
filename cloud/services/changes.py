"""The one place where "this store's ruleset or stock changed" is decided and announced.

A service that alters anything a store's compiled ruleset depends on calls
:func:`ruleset_changed` inside its transaction: the store's version is bumped
in the database (``version = version + 1``, so concurrent writers never hand
out the same number), once per transaction however many rows changed. A stock
upload calls :func:`stock_changed`. Only after the transaction committed is
the hook called, so a publisher plugged in there (:mod:`cloud.publisher`)
never announces a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Store

log = logging.getLogger(__name__)

Change = Literal["ruleset", "stock"]
StoreChangeHook = Callable[[str, Change], None]
_RULESETS = "nahfeld.ruleset_changed"
_STOCK = "nahfeld.stock_changed"
_KEYS: tuple[tuple[Change, str], ...] = (("ruleset", _RULESETS), ("stock", _STOCK))


def ruleset_changed(session: Session, store_ids: Iterable[str], *, bump: bool = True) -> None:
    """Note the stores for announcing after commit; ``bump=False`` for a new store, whose
    first ruleset is version 1 as created."""
    pending: set[str] = session.info.setdefault(_RULESETS, set())
    fresh = set(store_ids) - pending
    if not fresh:
        return
    if bump:
        session.execute(
            update(Store)
            .where(Store.id.in_(sorted(fresh)))
            .values(ruleset_version=Store.ruleset_version + 1)
        )
    pending |= fresh


def stock_changed(session: Session, store_id: str) -> None:
    session.info.setdefault(_STOCK, set()).add(store_id)


def log_store_change(store_id: str, change: Change) -> None:
    """The hook when nothing publishes (tests, or a service run without a broker)."""
    log.info("%s of store %s changed", change, store_id)


def install_store_change_hook(factory: sessionmaker[Session], hook: StoreChangeHook) -> None:
    """Call ``hook(store_id, change)`` after each commit that changed a store's ruleset or stock."""

    def after_commit(session: Session) -> None:
        for change, key in _KEYS:
            for store_id in sorted(session.info.pop(key, ())):
                try:
                    hook(store_id, change)
                except Exception:  # the change is committed; a failed announcement must not undo it
                    log.exception("%s hook failed for store %s", change, store_id)

    def after_rollback(session: Session) -> None:
        for _change, key in _KEYS:
            session.info.pop(key, None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda session, _tx: after_rollback(session))
