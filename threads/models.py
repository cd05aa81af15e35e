from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.models import TenantModel, same_org


class Thread(TenantModel):
    title = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_provider = models.CharField(max_length=32, blank=True)
    last_model = models.CharField(max_length=200, blank=True)
    archived = models.BooleanField(default=False)
    memory_enabled = models.BooleanField(default=True, help_text="Recall memories of other threads here.")
    # The next message's seq; bumped under a row lock so seq has no gaps or duplicates.
    next_seq = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["org", "archived", "-updated_at"], name="thread_org_recent_idx")]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Thread {self.pk}"


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class Status(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    FAILED = "failed", "Failed"


class Message(TenantModel):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=200, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    citations = models.JSONField(default=list, blank=True)
    routing = models.JSONField(default=dict, blank=True, help_text="The routing decision, with skipped candidates.")
    error_category = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["thread", "seq"], name="message_unique_seq")]
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq} in thread {self.thread_id}"

    def clean(self) -> None:
        same_org(self, "thread")


# --- Memory (threads/memory/, docs/memory.md) ---


class MemorySettings(TenantModel):
    """An org's memory switch and recall tuning; no row means the settings-level defaults."""

    class Embeddings(models.TextChoices):
        OFF = "", "Off (lexical only)"
        OPENAI = "openai", "OpenAI"
        GEMINI = "gemini", "Gemini"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible endpoint"

    enabled = models.BooleanField(default=True, help_text="Index this org's messages and recall them in other threads.")
    top_k = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Memories recalled per message; empty = DAC_MEMORY_TOP_K.")
    min_score = models.FloatField(null=True, blank=True, help_text="Lowest lexical score recalled; empty = DAC_MEMORY_MIN_SCORE.")
    embeddings = models.CharField(max_length=32, blank=True, choices=Embeddings.choices, help_text="Dense embeddings through this provider's key.")
    embedding_model = models.CharField(max_length=200, blank=True, help_text="Empty = the provider's default embedding model.")
    # While memory is off nothing is indexed; switching it back on queues what was missed.
    disabled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org"], name="memory_settings_one_per_org")]
        verbose_name_plural = "memory settings"

    def __str__(self) -> str:
        return f"Memory of org {self.org_id}"


class MemoryBacklog(TenantModel):
    """Work owed to the memory store: (re)index a message, or forget a thread's points.

    Rows are written in the chat's own step (cheap) and deleted once Qdrant has the change; a
    failure leaves the row with a backoff, retried on the org's next index call and by
    `manage.py reindex_memory`.
    """

    class Kind(models.TextChoices):
        MESSAGE = "message", "Sync a message"
        THREAD = "thread", "Forget a thread"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MESSAGE)
    target_id = models.BigIntegerField(help_text="The message id or thread id (no foreign key: forgetting outlives the row).")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Re-queuing a row bumps this; a worker deletes only the version it processed.
    enqueued_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "kind", "target_id"], name="memory_backlog_unique_target")]
        indexes = [models.Index(fields=["org", "next_attempt_at"], name="memory_backlog_due_idx")]
        verbose_name_plural = "memory backlog"

    def __str__(self) -> str:
        return f"{self.kind} {self.target_id} of org {self.org_id} ({self.attempts} attempts)"


class ForgottenMemory(TenantModel):
    """A message a member removed from memory: never indexed again, even by a rebuild."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="+")
    forgotten_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "forgotten memories"

    def __str__(self) -> str:
        return f"message {self.message_id} forgotten"

    def clean(self) -> None:
        same_org(self, "message")
