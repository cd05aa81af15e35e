"""Thread writes: create, rename, archive, delete."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dac.errors import ValidationFailed
from dac.storable_text import unstorable_reason
from threads.models import Message, Thread

MAX_TITLE = 200


def title_from(content: str) -> str:
    line = " ".join(content.split())
    return line[:77] + "…" if len(line) > 80 else line


def _checked_title(title: str) -> str:
    if len(title) > MAX_TITLE:
        raise ValidationFailed(f"Title is too long ({MAX_TITLE} characters at most).", detail={"title": "too_long"})
    if reason := unstorable_reason("The title", title):
        raise ValidationFailed(reason, detail={"title": "unstorable"})
    return title


def thread_create(*, org_id: int, created_by=None, title: str = "") -> Thread:
    title = _checked_title((title or "").strip())
    return Thread.objects.create(org_id=org_id, created_by=created_by, title=title)


def thread_update(*, thread: Thread, title: str | None = None, archived: bool | None = None, memory_enabled: bool | None = None) -> Thread:
    fields = ["updated_at"]
    if title is not None:
        title = title.strip()
        if not title:
            raise ValidationFailed("Title cannot be empty.", detail={"title": "empty"})
        thread.title = _checked_title(title)
        fields.append("title")
    if archived is not None:
        thread.archived = archived
        fields.append("archived")
    if memory_enabled is not None:
        thread.memory_enabled = memory_enabled
        fields.append("memory_enabled")
    thread.updated_at = timezone.now()
    thread.save(update_fields=fields)
    return thread


def thread_delete(*, thread: Thread) -> None:
    """Delete a thread, its messages and their memories."""
    from threads import memory

    org_id, thread_id = thread.org_id, thread.pk
    thread.delete()
    memory.forget_thread(org_id=org_id, thread_id=thread_id)


INTERRUPTED = "Interrupted: DAC stopped or lost its database while answering. Retry the message."


def stale_answers_sweep(*, thread: Thread) -> int:
    """Answers still 'streaming' long after any provider call could last were cut off (a worker
    restart, a database outage): show them as failed instead of forever typing."""
    timeout = settings.DAC_PROVIDER_TIMEOUT * (1 + settings.DAC_PROVIDER_RETRIES) + 60
    cutoff = timezone.now() - timedelta(seconds=timeout)
    return Message.objects.filter(thread=thread, status="streaming", created_at__lt=cutoff).update(
        status="failed", error_category="internal", error_message=INTERRUPTED
    )
