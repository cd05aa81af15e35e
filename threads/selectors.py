"""Thread and message reads; "may this caller see it" is RLS plus the org-scoped manager."""

from __future__ import annotations

from django.db.models import QuerySet

from dac.errors import NotFound
from dac.storable_text import unstorable
from threads.models import Message, Thread


def thread_list(*, search: str = "", archived: bool = False) -> QuerySet[Thread]:
    threads = Thread.objects.filter(archived=archived)
    if unstorable(search):  # no title holds it (they are refused), and PostgreSQL could not compare it
        return threads.none()
    if search:
        threads = threads.filter(title__icontains=search.strip()[:100])
    return threads.order_by("-updated_at")


def thread_get(*, thread_id) -> Thread:
    try:
        thread_id = int(thread_id)
    except (TypeError, ValueError):
        raise NotFound("No such thread.") from None
    thread = Thread.objects.filter(pk=thread_id).first()
    if thread is None:
        raise NotFound("No such thread.")
    return thread


def message_list(*, thread: Thread, before_seq: int | None = None, limit: int = 50) -> list[Message]:
    """The newest `limit` messages before `before_seq`, oldest first (older pages load on demand)."""
    messages = Message.objects.filter(thread=thread)
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    return list(reversed(messages.order_by("-seq")[:limit]))


def context_messages(*, thread: Thread, window: int, before_seq: int) -> list[Message]:
    """The last `window` usable messages before `before_seq` (failed or empty ones are skipped)."""
    rows = (
        Message.objects.filter(thread=thread, seq__lt=before_seq, status="complete")
        .exclude(content="")
        .order_by("-seq")[:window]
    )
    return list(reversed(rows))
