"""`message_send`: the one way a message reaches a provider (DESIGN.md, "The send pipeline").

The chat page, the threads API and the OpenAI-compatible gateway all call it. It runs in two
phases so that errors the caller must see as a status code (404, 400, 429) are raised before
any byte is streamed:

- `message_send()` (prepare): resolve the thread, validate, route, reserve quota on the first
  candidate that has room, build the context, save the user message and a placeholder for the
  answer (seq allocated under a row lock, so no gaps or duplicates), audit the decision.
- a background task (answer): call the provider with bounded retries, fall back to the next
  candidate on a failure before the first token, reconcile the quota, save the answer, audit
  and measure the call. It feeds a queue that the caller reads for streaming; if the client
  goes away the task still finishes and saves, so a reload shows the answer.

No database transaction or connection is held during a provider call: every database step
runs through `_db`, which returns the pooled connection as soon as the step is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, audit_record, sha256_hex
from dac.errors import ApplicationError, Conflict, ProviderFailed, ValidationFailed
from metrics.services import provider_call_record
from providers import vault
from providers.adapters import ProviderError, get_adapter
from providers.services import quota
from providers.services.keys import active_keys
from providers.urlsafety import validate_base_url
from routing.services import Candidate, RoutePlan, org_routing, plan_route
from tenants.context import tenant_context
from tenants.services import user_may_use_provider
from threads import memory
from threads.models import Message, Status, Thread
from threads.selectors import context_messages, thread_get
from threads.services.threads import title_from

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are the assistant of DAC, a team workspace. Answer helpfully and concisely, in the "
    "language of the question. Use Markdown where it helps."
)
RETRYABLE = frozenset({"timeout", "unavailable"})
# Before the first token these move on to the next provider; content filtering does not:
# routing around a provider's safety decision is not ours to do.
FALLBACK = frozenset({"auth", "bad_request", "rate_limited", "quota_exceeded", "timeout", "unavailable"})
ROLES = frozenset({"system", "user", "assistant"})

# Answer tasks run detached from the request; keep a reference so they are not collected.
_RUNNING: set[asyncio.Task] = set()


@dataclass(frozen=True)
class Caller:
    org_id: int
    user: object | None = None  # tenants.User for people, None for API tokens
    token: object | None = None

    @property
    def user_id(self) -> int | None:
        return getattr(self.user, "pk", None)

    @property
    def actor(self) -> Actor:
        if self.token is not None:
            return Actor.token(self.token)
        if self.user is not None:
            return Actor.user(self.user)
        return Actor.system()


@dataclass(frozen=True)
class SendOptions:
    provider: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = True


@dataclass
class Answer:
    text: str = ""
    provider: str = ""
    model: str = ""
    status: str = Status.STREAMING
    latency_ms: int | None = None
    first_token_ms: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    citations: list[str] = field(default_factory=list)
    finish_reason: str = ""
    error_category: str = ""
    error_message: str = ""
    routing: dict = field(default_factory=dict)
    message_id: int | None = None
    usage_headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    answer: Answer


@dataclass(frozen=True)
class Failed:
    answer: Answer


@dataclass
class SendHandle:
    """What the caller holds while the answer is produced."""

    caller: Caller
    options: SendOptions
    plan: RoutePlan
    keys: dict
    candidate_index: int
    reservation: quota.Reservation
    messages: list[dict]
    thread_id: int | None
    user_message_id: int | None
    assistant_message_id: int | None
    started: float
    prepare_ms: float
    usage_headers: dict
    queue: asyncio.Queue | None = None
    task: asyncio.Task | None = None

    @property
    def candidate(self) -> Candidate:
        return self.plan.candidates[self.candidate_index]

    def start(self) -> None:
        """Start answering on the running event loop (the one that will read the events).

        Detached from the reader: if the client goes away, the answer still completes and is
        saved. Started lazily so a sync caller can prepare in one loop and stream in another.
        """
        if self.task is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(_answer(self))
            _RUNNING.add(self.task)
            self.task.add_done_callback(_RUNNING.discard)

    async def events(self) -> AsyncIterator[Delta | Finished | Failed]:
        """Deltas as they arrive, then one Finished or Failed."""
        self.start()
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, (Finished, Failed)):
                return

    def response_headers(self, usage_headers: dict | None = None) -> dict:
        """What every provider-calling response says: quota state, DAC's overhead, the route."""
        return {
            **(usage_headers or self.usage_headers),
            "X-DAC-Overhead-Ms": f"{self.prepare_ms:.2f}",
            "X-DAC-Provider": self.candidate.provider,
            "X-DAC-Rule": self.plan.rule,
        }

    async def wait(self) -> Answer:
        """The whole answer (starts it if needed)."""
        async for event in self.events():
            if isinstance(event, (Finished, Failed)):
                return event.answer
        raise RuntimeError("answer stream ended without a result")  # pragma: no cover


def _run_released(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        if not connection.in_atomic_block:
            connection.close()  # back to the pool: nothing is held across a provider call


async def _db(fn, *args, **kwargs):
    return await sync_to_async(_run_released)(fn, *args, **kwargs)


def validate_content(content) -> str:
    if not isinstance(content, str):
        raise ValidationFailed("The message must be text.", detail={"content": "not_text"})
    if not content.strip():
        raise ValidationFailed("The message is empty: write something first.", detail={"content": "empty"})
    limit = settings.DAC_MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise ValidationFailed(
            f"The message is {len(content):,} characters long; the limit is {limit:,}.", detail={"content": "too_long", "limit": limit}
        )
    return content


def validate_history(history) -> list[dict]:
    """Messages given by a client (the gateway): roles and text checked, nothing trusted."""
    if not isinstance(history, list) or not history:
        raise ValidationFailed("messages must be a non-empty list.", detail={"messages": "empty"})
    clean = []
    total = 0
    for index, message in enumerate(history):
        if not isinstance(message, dict):
            raise ValidationFailed(f"messages[{index}] must be an object.", detail={"messages": index})
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ROLES:
            raise ValidationFailed(f"messages[{index}].role {role!r} is not one of system, user, assistant.", detail={"messages": index})
        content = message.get("content")
        if isinstance(content, list):  # typed parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
        if not isinstance(content, str):
            raise ValidationFailed(f"messages[{index}].content must be text.", detail={"messages": index})
        total += len(content)
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "user" and m["content"].strip() for m in clean):
        raise ValidationFailed("messages must contain a user message with text.", detail={"messages": "no_user"})
    limit = settings.DAC_MAX_MESSAGE_CHARS * 8
    if total > limit:
        raise ValidationFailed(f"The conversation is {total:,} characters long; the limit is {limit:,}.", detail={"messages": "too_long"})
    return clean


def _validate_options(options: SendOptions) -> None:
    if options.max_tokens is not None and (
        isinstance(options.max_tokens, bool) or not isinstance(options.max_tokens, int) or not 1 <= options.max_tokens <= 128_000
    ):
        raise ValidationFailed("max_tokens must be a whole number from 1 to 128,000.", detail={"max_tokens": "invalid"})
    if options.temperature is not None and (
        isinstance(options.temperature, bool) or not isinstance(options.temperature, (int, float)) or not 0 <= options.temperature <= 2
    ):
        raise ValidationFailed("temperature must be a number from 0 to 2.", detail={"temperature": "invalid"})


async def message_send(
    *,
    caller: Caller,
    content: str | None = None,
    thread_id: int | None = None,
    history: list[dict] | None = None,
    options: SendOptions = SendOptions(),
) -> SendHandle:
    """Prepare an answer; raises ApplicationError (404/400/403/429/503) before anything streams.

    The answer starts when the caller reads `handle.events()` or awaits `handle.wait()`.

    With `thread_id`, `content` is the new user message and the thread's last N messages are
    the context; without, `history` (OpenAI-style messages) is the whole conversation and
    nothing is stored (the call is still audited, metered and rate-limited).
    """
    started = time.perf_counter()
    _validate_options(options)
    if thread_id is not None:
        content = validate_content(content)
    else:
        history = validate_history(history)
        content = next(m["content"] for m in reversed(history) if m["role"] == "user")
    return await _db(_prepare, caller, content, thread_id, history, options, started)


def _prepare(caller: Caller, content: str, thread_id: int | None, history: list[dict] | None, options: SendOptions, started: float) -> SendHandle:
    with tenant_context(caller.org_id):
        thread = thread_get(thread_id=thread_id) if thread_id is not None else None
        if thread is not None and thread.archived:
            raise Conflict("This thread is archived: unarchive it to continue the conversation.", code="thread_archived")
        keys = active_keys()
        plan = plan_route(
            text=content,
            message_count=(thread.next_seq - 1) if thread else max(len(history) - 1, 0),
            keys=keys,
            may_use=lambda provider: user_may_use_provider(user_id=caller.user_id, provider=provider),
            routing=org_routing(),
            explicit_provider=options.provider,
            explicit_model=options.model,
        )
        if thread is not None:
            window = _context_window(caller.org_id)
            prior = [{"role": m.role, "content": m.content} for m in context_messages(thread=thread, window=window, before_seq=thread.next_seq)]
            conversation = [*prior, {"role": "user", "content": content}]
        else:
            conversation = list(history)
        recalled = memory.recall_for(org_id=caller.org_id, thread=thread, text=content) if thread is not None else []
        plan.recalled = [r.to_dict() for r in recalled]
        messages = _with_system_prompt(conversation, recalled)
        estimated = quota.estimate_tokens(messages, options.max_tokens)
        index, reservation = _reserve_from(plan, 0, caller.org_id, estimated)
        try:
            user_id, assistant_id = _save_exchange(thread, caller, content, plan) if thread is not None else (None, None)
        except BaseException:
            quota.quota_release(reservation)
            raise
        if recalled:
            memory.record_provenance(org_id=caller.org_id, actor=caller.actor, message_id=assistant_id, thread_id=thread.pk, recalled=recalled)
        usage_headers = quota.rate_limit_headers(quota.quota_usage(org_id=caller.org_id, provider=plan.candidates[index].provider))
    handle = SendHandle(
        caller=caller,
        options=options,
        plan=plan,
        keys=keys,
        candidate_index=index,
        reservation=reservation,
        messages=messages,
        thread_id=thread.pk if thread else None,
        user_message_id=user_id,
        assistant_message_id=assistant_id,
        started=started,
        prepare_ms=(time.perf_counter() - started) * 1000,
        usage_headers=usage_headers,
    )
    return handle


def _context_window(org_id: int) -> int:
    from tenants.models import Organization

    return Organization.objects.values_list("context_window", flat=True).get(pk=org_id)


def _with_system_prompt(conversation: list[dict], recalled: list) -> list[dict]:
    system = SYSTEM_PROMPT
    if recalled:
        notes = "\n".join(f"- {r.text}" for r in recalled)
        system += (
            "\n\nRecalled context from this organization's other conversations (use it only if it "
            f"helps; it may be outdated):\n{notes}"
        )
    if conversation and conversation[0]["role"] == "system":
        return [{"role": "system", "content": conversation[0]["content"] + "\n\n" + system}, *conversation[1:]]
    return [{"role": "system", "content": system}, *conversation]


def _reserve_from(plan: RoutePlan, start: int, org_id: int, estimated: int) -> tuple[int, quota.Reservation]:
    """Reserve quota on the first candidate from `start` that has room; skip the others."""
    last_exceeded = None
    for index in range(start, len(plan.candidates)):
        candidate = plan.candidates[index]
        try:
            return index, quota.quota_reserve(org_id=org_id, provider=candidate.provider, estimated_tokens=estimated)
        except quota.QuotaExceeded as exc:
            plan.skip(candidate.provider, f"over its daily {exc.limit_kind} limit")
            last_exceeded = exc
    if last_exceeded is not None:
        raise last_exceeded
    reasons = "; ".join(f"{s['provider']}: {s['reason']}" for s in plan.skipped) or "none configured"
    raise ProviderFailed(
        f"No provider can answer this message ({reasons}). Add a key in Settings → Providers, or ask an admin for access.",
        code="no_provider",
        detail={"skipped": plan.skipped},
    )


def _save_exchange(thread: Thread, caller: Caller, content: str, plan: RoutePlan) -> tuple[int, int]:
    with transaction.atomic():
        locked = Thread.objects.select_for_update().get(pk=thread.pk)
        seq = locked.next_seq
        user_message = Message.objects.create(
            org_id=caller.org_id, thread=locked, seq=seq, role="user", content=content, created_by=caller.user
        )
        first = plan.candidates[0]
        assistant = Message.objects.create(
            org_id=caller.org_id, thread=locked, seq=seq + 1, role="assistant", status=Status.STREAMING,
            provider=first.provider, model=first.model, routing=plan.to_dict(chosen=first),
        )
        locked.next_seq = seq + 2
        locked.updated_at = timezone.now()
        fields = ["next_seq", "updated_at"]
        if not locked.title:
            locked.title = title_from(content)
            fields.append("title")
        locked.save(update_fields=fields)
    return user_message.pk, assistant.pk


async def _answer(handle: SendHandle) -> None:
    """Phase two: call providers along the chain; always ends with Finished or Failed."""
    answer = Answer(usage_headers=handle.usage_headers)
    try:
        await _answer_chain(handle, answer)
    except Exception:  # a bug here must not leave the placeholder streaming forever
        logger.exception("message_send: answer task failed")
        answer.status, answer.error_category = Status.FAILED, "internal"
        answer.error_message = "DAC failed while answering; the error was logged. Try again."
        await _db(_finish, handle, answer)
        handle.queue.put_nowait(Failed(answer))


async def _answer_chain(handle: SendHandle, answer: Answer) -> None:
    while True:
        candidate = handle.candidate
        error, produced = await _call_candidate(handle, candidate, answer)
        if error is None:
            answer.status = Status.COMPLETE
            await _db(_finish, handle, answer)
            handle.queue.put_nowait(Finished(answer))
            return
        if produced or error.category not in FALLBACK or handle.plan.explicit:
            break
        handle.plan.skip(candidate.provider, f"failed: {error.category}")
        estimated = handle.reservation.tokens
        await _db(quota.quota_release, handle.reservation)
        try:
            index, reservation = await _db(_reserve_next, handle, estimated)
        except ApplicationError:
            break
        handle.candidate_index, handle.reservation = index, reservation
        answer.text = ""
    answer.status = Status.FAILED
    answer.error_category = error.category
    answer.error_message = _user_message_for(error, candidate.provider, produced)
    await _db(_finish, handle, answer)
    handle.queue.put_nowait(Failed(answer))


def _reserve_next(handle: SendHandle, estimated: int):
    with tenant_context(handle.caller.org_id):
        return _reserve_from(handle.plan, handle.candidate_index + 1, handle.caller.org_id, estimated)


async def _call_candidate(handle: SendHandle, candidate: Candidate, answer: Answer) -> tuple[ProviderError | None, bool]:
    """One provider, with bounded retries on timeout/5xx before the first token.

    Returns (error or None, whether any text reached the caller)."""
    options = handle.options
    key = handle.keys.get(candidate.provider)
    try:
        api_key = vault.decrypt(key.ciphertext, org_id=key.org_id) if key else None
        base_url = (await sync_to_async(validate_base_url)(key.base_url) if key and key.base_url else None) or None
    except (vault.VaultError, ValidationFailed) as exc:
        error = ProviderError("auth" if isinstance(exc, vault.VaultError) else "bad_request", None, str(exc))
        await _db(_record_call, handle, candidate, None, error, 0.0, None)
        return error, False
    adapter_options = {"chunk_delay": settings.DAC_DEMO_STREAM_DELAY_MS / 1000} if candidate.provider == "demo" else {}
    adapter = get_adapter(candidate.provider, api_key=api_key, base_url=base_url, **adapter_options)
    attempts = 1 + settings.DAC_PROVIDER_RETRIES
    produced = False
    for attempt in range(attempts):
        call_started = time.perf_counter()
        first_token_at = None
        try:
            if options.stream:
                result = None
                async for event in adapter.stream(messages=handle.messages, model=candidate.model, max_tokens=options.max_tokens, temperature=options.temperature, timeout=settings.DAC_PROVIDER_TIMEOUT):
                    if event.delta:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        produced = True
                        answer.text += event.delta
                        handle.queue.put_nowait(Delta(event.delta))
                    if event.result is not None:
                        result = event.result
            else:
                result = await adapter.complete(messages=handle.messages, model=candidate.model, max_tokens=options.max_tokens, temperature=options.temperature, timeout=settings.DAC_PROVIDER_TIMEOUT)
                answer.text = result.text
        except ProviderError as error:
            elapsed = (time.perf_counter() - call_started) * 1000
            await _db(_record_call, handle, candidate, None, error, elapsed, _ms_since(call_started, first_token_at))
            if produced or error.category not in RETRYABLE or attempt == attempts - 1:
                _fill_failure(answer, candidate, elapsed)
                return error, produced
            await asyncio.sleep(_backoff(attempt, error))
            continue
        elapsed = (time.perf_counter() - call_started) * 1000
        _fill_success(answer, candidate, result, elapsed, _ms_since(call_started, first_token_at), handle)
        await _db(_record_call, handle, candidate, result, None, elapsed, answer.first_token_ms)
        return None, produced
    raise AssertionError("unreachable")  # pragma: no cover


def _ms_since(start: float, at: float | None) -> int | None:
    return None if at is None else round((at - start) * 1000)


def _backoff(attempt: int, error: ProviderError) -> float:
    base = settings.DAC_PROVIDER_RETRY_BACKOFF * (2**attempt)
    if error.retry_after is not None:
        base = max(base, min(float(error.retry_after), 2.0))
    return min(base, 2.0)


def _fill_success(answer: Answer, candidate: Candidate, result, elapsed: float, first_token_ms: int | None, handle: SendHandle) -> None:
    answer.text = result.text or answer.text
    answer.provider = candidate.provider
    answer.model = result.model or candidate.model
    answer.latency_ms = round(elapsed)
    answer.first_token_ms = first_token_ms
    answer.input_tokens = result.input_tokens
    answer.output_tokens = result.output_tokens
    answer.citations = list(result.citations or [])
    answer.finish_reason = result.finish_reason
    answer.routing = handle.plan.to_dict(chosen=candidate)


def _fill_failure(answer: Answer, candidate: Candidate, elapsed: float) -> None:
    answer.provider = candidate.provider
    answer.model = candidate.model
    answer.latency_ms = round(elapsed)


def _user_message_for(error: ProviderError, provider: str, produced: bool) -> str:
    prefix = "The answer was cut off: " if produced else ""
    hints = {
        "auth": f"{provider} rejected the organization's key. An admin can fix it in Settings → Providers.",
        "quota_exceeded": f"{provider} says the key's account is out of credit or quota. Top it up or add another provider's key.",
        "rate_limited": f"{provider} is rate limiting the key. Wait a minute and retry, or pick another provider.",
        "timeout": f"{provider} did not answer in time. Retry, or pick another provider.",
        "unavailable": f"{provider} is failing or unreachable right now. Retry in a moment, or pick another provider.",
        "bad_request": f"{provider} refused the request ({error.message[:200]}). Try a shorter message or another model.",
        "content_filtered": f"{provider} withheld the answer under its content policy.",
    }
    return prefix + hints.get(error.category, f"{provider} failed ({error.category}).")


def _request_hash(handle: SendHandle, candidate: Candidate) -> str:
    body = {"provider": candidate.provider, "model": candidate.model, "messages": handle.messages, "max_tokens": handle.options.max_tokens, "temperature": handle.options.temperature}
    return sha256_hex(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _record_call(handle: SendHandle, candidate: Candidate, result, error: ProviderError | None, elapsed_ms: float, first_token_ms: int | None) -> None:
    """Audit and measure one provider call (success or failure). Never the plaintext."""
    org_id = handle.caller.org_id
    outcome = "ok" if error is None else error.category
    details = {
        "provider": candidate.provider,
        "model": (result.model if result else None) or candidate.model,
        "outcome": outcome,
        "latency_ms": round(elapsed_ms),
        "input_tokens": result.input_tokens if result else None,
        "output_tokens": result.output_tokens if result else None,
        "thread_id": handle.thread_id,
        "message_id": handle.assistant_message_id,
    }
    if error is not None:
        details["status"] = error.status
    with tenant_context(org_id):
        audit_record(
            org_id=org_id,
            actor=handle.caller.actor,
            event="provider.call",
            target=f"provider:{candidate.provider}",
            details=details,
            request_hash=_request_hash(handle, candidate),
            response_hash=sha256_hex(result.text) if result else "",
        )
        provider_call_record(
            org_id=org_id,
            provider=candidate.provider,
            model=details["model"] or "",
            outcome=outcome,
            latency_ms=elapsed_ms,
            first_token_ms=first_token_ms,
            input_tokens=details["input_tokens"],
            output_tokens=details["output_tokens"],
            streamed=handle.options.stream,
        )
        if error is None and candidate.key_id:
            from providers.models import ProviderKey

            ProviderKey.objects.filter(pk=candidate.key_id).update(last_used_at=timezone.now())


def _finish(handle: SendHandle, answer: Answer) -> None:
    """Reconcile the quota and save the answer (complete, or failed with what arrived)."""
    org_id = handle.caller.org_id
    with tenant_context(org_id):
        if answer.status == Status.COMPLETE:
            used = (answer.input_tokens or 0) + (answer.output_tokens or 0) or None
            quota.quota_reconcile(handle.reservation, actual_tokens=used)
        elif answer.text:
            quota.quota_reconcile(handle.reservation, actual_tokens=None)
        else:
            quota.quota_release(handle.reservation)
        answer.usage_headers = quota.rate_limit_headers(quota.quota_usage(org_id=org_id, provider=handle.reservation.provider))
        if not answer.routing:
            answer.routing = handle.plan.to_dict(chosen=handle.candidate)
        audit_record(
            org_id=org_id, actor=handle.caller.actor, event="routing.decision",
            target=f"thread:{handle.thread_id}" if handle.thread_id else "gateway",
            details={**answer.routing, "outcome": answer.status},
        )
        if handle.assistant_message_id is None:
            return
        with transaction.atomic():
            Message.objects.filter(pk=handle.assistant_message_id).update(
                content=answer.text,
                status=answer.status,
                provider=answer.provider or handle.candidate.provider,
                model=answer.model or handle.candidate.model,
                latency_ms=answer.latency_ms,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                citations=answer.citations,
                routing=answer.routing,
                error_category=answer.error_category,
                error_message=answer.error_message[:500],
            )
            if answer.status == Status.COMPLETE:
                Thread.objects.filter(pk=handle.thread_id).update(
                    last_provider=answer.provider, last_model=answer.model, updated_at=timezone.now()
                )
        answer.message_id = handle.assistant_message_id
        if answer.status == Status.COMPLETE:
            memory.index_messages(org_id=org_id, message_ids=[handle.user_message_id, handle.assistant_message_id])
