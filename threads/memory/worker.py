"""The indexer thread: drains orgs' backlogs off the request path, a batch per org in turn.

One daemon thread per process, started on first use. `submit(org_id)` is what the send
pipeline's `index_messages` ends with: it returns at once. A process that exits with work
queued loses nothing: the rows are in MemoryBacklog and are retried on the org's next index
call or by `manage.py reindex_memory --pending`.
"""

from __future__ import annotations

import logging
import threading

from django.db import connection

logger = logging.getLogger("threads.memory")

_cond = threading.Condition()
_pending: dict[int, None] = {}  # insertion-ordered set of org ids
_busy = False
_thread: threading.Thread | None = None


def submit(org_id: int) -> None:
    global _thread
    with _cond:
        _pending[org_id] = None
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="dac-memory-indexer", daemon=True)
            _thread.start()
        _cond.notify_all()


def _run() -> None:
    global _busy
    from threads.memory.services import process_backlog

    while True:
        with _cond:
            while not _pending:
                _cond.wait()
            org_id = next(iter(_pending))
            del _pending[org_id]
            _busy = True
        more = False
        try:
            more = process_backlog(org_id=org_id).more
        except Exception:  # the thread must survive anything
            logger.exception("memory: indexer failed for org %s", org_id)
        finally:
            connection.close()  # back to the pool between batches
            with _cond:
                if more:  # round-robin: a large backfill of one org does not starve the others
                    _pending[org_id] = None
                _busy = False
                _cond.notify_all()


def wait_idle(timeout: float = 10.0) -> bool:
    """Block until nothing is queued or running (tests, and commands that need a settled store)."""
    with _cond:
        return _cond.wait_for(lambda: not _pending and not _busy, timeout=timeout)
