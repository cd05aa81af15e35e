from django.contrib import admin

from threads.models import Message, Thread


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("title", "org", "created_by", "last_provider", "archived", "updated_at")
    list_filter = ("archived", "last_provider")
    search_fields = ("title", "org__slug")
    list_select_related = ("org", "created_by")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("thread", "seq", "role", "status", "provider", "model", "latency_ms", "created_at")
    list_filter = ("role", "status", "provider", "error_category")
    search_fields = ("thread__title", "org__slug")
    list_select_related = ("thread",)


# --- Memory (threads/memory/) ---

from threads.models import ForgottenMemory, MemoryBacklog, MemorySettings  # noqa: E402


@admin.register(MemorySettings)
class MemorySettingsAdmin(admin.ModelAdmin):
    list_display = ("org", "enabled", "top_k", "min_score", "embeddings", "embedding_model", "updated_at")
    list_filter = ("enabled", "embeddings")
    search_fields = ("org__slug",)
    list_select_related = ("org",)


@admin.register(MemoryBacklog)
class MemoryBacklogAdmin(admin.ModelAdmin):
    """The indexing backlog: what Qdrant still owes each org; failing rows show their error."""

    list_display = ("org", "kind", "target_id", "attempts", "next_attempt_at", "last_error", "created_at")
    list_filter = ("kind", "attempts")
    search_fields = ("org__slug", "target_id")
    list_select_related = ("org",)
    ordering = ("-attempts", "next_attempt_at")
    readonly_fields = ("org", "kind", "target_id", "attempts", "last_error", "next_attempt_at", "enqueued_at", "created_at")

    def changelist_view(self, request, extra_context=None):
        from django.db.models import Count, Q

        totals = self.get_queryset(request).aggregate(pending=Count("id"), failing=Count("id", filter=Q(attempts__gt=0)))
        per_org = (
            self.get_queryset(request).values("org__slug")
            .annotate(pending=Count("id"), failing=Count("id", filter=Q(attempts__gt=0))).order_by("-pending")[:20]
        )
        extra_context = {**(extra_context or {}), "subtitle": (
            f"{totals['pending']} pending, {totals['failing']} retrying"
            + (" — " + ", ".join(f"{r['org__slug']}: {r['pending']} ({r['failing']} retrying)" for r in per_org) if per_org else "")
        )}
        return super().changelist_view(request, extra_context=extra_context)

    def has_add_permission(self, request):
        return False


@admin.register(ForgottenMemory)
class ForgottenMemoryAdmin(admin.ModelAdmin):
    list_display = ("message", "org", "forgotten_by", "created_at")
    search_fields = ("org__slug",)
    list_select_related = ("org", "forgotten_by")
    raw_id_fields = ("message",)
