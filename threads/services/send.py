"""`message_send`: the one way a message reaches a provider (DESIGN.md, "The send pipeline").

This module is phase one; threads/services/answer.py is phase two; threads/services/handle.py
holds what the caller gets (`SendHandle`) and the events it reads.

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
runs through `db_step`, which returns the pooled connection as soon as the step is done.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dac.db.steps import db_step
from dac.errors import Conflict, ProviderFailed, ValidationFailed
from dac.org_cache import PerOrgCache
from dac.storable_text import lone_surrogate, surrogate_message, unstorable_reason
from providers.services import quota
from providers.services.keys import active_keys, active_keys_cached
from routing.services import RoutePlan, org_routing, org_routing_cached, plan_route
from tenants.context import tenant_context
from tenants.models import Organization
from tenants.services import user_may_use_provider
from threads import memory
from threads.models import Message, Status, Thread
from threads.selectors import context_messages, thread_get
from threads.services.handle import Caller, SendHandle, SendOptions
from threads.services.threads import title_from

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are the assistant of DAC, a team workspace. Answer helpfully and concisely, in the "
    "language of the question. Use Markdown where it helps."
)
ROLES = frozenset({"system", "user", "assistant", "tool"})

def validate_content(content) -> str:
    if not isinstance(content, str):
        raise ValidationFailed("The message must be text.", detail={"content": "not_text"})
    if not content.strip():
        raise ValidationFailed("The message is empty: write something first.", detail={"content": "empty"})
    if reason := unstorable_reason("The message", content):  # PostgreSQL's text cannot hold it: refused here, not failed at the save
        raise ValidationFailed(reason, detail={"content": "null_character" if "\x00" in content else "lone_surrogate"})
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
    called: set[str] = set()  # the ids of the tool calls made so far
    answered: set[str] = set()  # and of those a tool message has answered
    for index, message in enumerate(history):
        if not isinstance(message, dict):
            raise ValidationFailed(f"messages[{index}] must be an object.", detail={"messages": index})
        role = message.get("role")
        if role == "developer":
            role = "system"
        if not isinstance(role, str) or role not in ROLES:
            raise ValidationFailed(f"messages[{index}].role {role!r} is not one of system, user, assistant, tool.", detail={"messages": index})
        content = message.get("content")
        calls = (message.get("tool_calls") or None) if role == "assistant" else None  # [] is no call
        if isinstance(content, list):  # typed parts
            content = _text_of_parts(content, index)
        if not isinstance(content, str) and not (content is None and calls):  # a turn that only calls functions
            raise ValidationFailed(f"messages[{index}].content must be text.", detail={"messages": index})
        if surrogate := lone_surrogate(content or ""):  # it could not even be sent on to a provider
            raise ValidationFailed(surrogate_message(f"messages[{index}].content", surrogate), detail={"messages": index})
        total += len(content or "")
        kept = {"role": role, "content": content}
        if calls is not None:
            kept["tool_calls"] = _tool_calls(calls, index)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id or call_id not in called:
                raise ValidationFailed(f"messages[{index}].tool_call_id must name a tool call of an earlier assistant message, "
                                       "the one this message answers.", detail={"messages": index})
            if call_id in answered:
                raise ValidationFailed(f"messages[{index}] answers the tool call {call_id!r} a second time: send one result a call.",
                                       detail={"messages": index})
            answered.add(call_id)
            kept["tool_call_id"] = call_id
        called.update(call["id"] for call in kept.get("tool_calls", ()))
        clean.append(kept)
    if not any(m["role"] == "user" and m["content"].strip() for m in clean):
        raise ValidationFailed("messages must contain a user message with text.", detail={"messages": "no_user"})
    limit = settings.DAC_MAX_MESSAGE_CHARS * 8
    if total > limit:
        raise ValidationFailed(f"The conversation is {total:,} characters long; the limit is {limit:,}.", detail={"messages": "too_long"})
    return clean


def _tool_calls(calls, index: int) -> list[dict]:
    """An assistant turn's calls, as an answer gave them: [{id, type "function", function: {name, arguments}}]."""
    shape = (f"messages[{index}].tool_calls must be a list of calls as an answer gives them: "
             '{"id", "type": "function", "function": {"name", "arguments"}}.')
    if not isinstance(calls, list) or not calls:
        raise ValidationFailed(shape, detail={"messages": index})
    kept = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(function, dict) and all(isinstance(value, str) and value for value in (call.get("id"), function.get("name")))
                and isinstance(function.get("arguments"), str)):
            raise ValidationFailed(shape, detail={"messages": index})
        if surrogate := lone_surrogate(function["arguments"]):
            raise ValidationFailed(surrogate_message(f"messages[{index}].tool_calls", surrogate), detail={"messages": index})
        kept.append({"id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": function["arguments"]}})
    return kept


def _text_of_parts(parts: list, index: int) -> str:
    """The text of a message given as typed parts. Only text parts: an image or audio part the
    providers are not sent would be answered as if it were not there."""
    texts = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            continue
        if kind == "text":
            what = "a text part whose text is not a string"
        elif isinstance(kind, str):
            what = f"a {kind!r} part"
        else:
            what = "a part that is not an object with a type"
        raise ValidationFailed(f"messages[{index}].content holds {what}: only text parts are supported.", detail={"messages": index})
    return "".join(texts)


MAX_OUTPUT_TOKENS = 128_000  # the largest answer any provider writes


def is_token_cap(value) -> bool:
    """Whether `value` is a max_tokens DAC takes: a whole number from 1 to MAX_OUTPUT_TOKENS."""
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_OUTPUT_TOKENS


def is_temperature(value) -> bool:
    """Whether `value` is a temperature DAC takes: a number from 0 to 2."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 2


def _validate_options(options: SendOptions) -> None:
    if options.max_tokens is not None and not is_token_cap(options.max_tokens):
        raise ValidationFailed(f"max_tokens must be a whole number from 1 to {MAX_OUTPUT_TOKENS:,}.", detail={"max_tokens": "invalid"})
    if options.temperature is not None and not is_temperature(options.temperature):
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
    if thread_id is None and caller.user is None:
        handle = await _shielded(_prepare_on_loop(caller, content, history, options, started))
        if handle is not None:
            return handle
    return await _shielded(db_step(_prepare, caller, content, thread_id, history, options, started))


async def _shielded(preparing) -> SendHandle | None:
    """A preparation run to its end even if the caller leaves meanwhile: it reserves quota (Redis
    counts a reservation once the script is sent, a pool thread cannot be stopped) and may save a
    thread's rows, which its handle must settle."""
    preparing = asyncio.ensure_future(preparing)
    try:
        return await asyncio.shield(preparing)
    except asyncio.CancelledError:
        preparing.add_done_callback(_abandon_prepared)
        raise


def _abandon_prepared(preparing: asyncio.Future) -> None:
    """A handle prepared for a caller that left while it was prepared: started and abandoned at
    once, so it runs its course (a thread's answer is produced and saved; any other ends before
    calling a provider and gives its quota back) instead of holding a reservation, and a thread's
    row 'streaming', with nothing to settle them."""
    if preparing.cancelled() or preparing.exception() is not None or preparing.result() is None:
        return
    handle = preparing.result()
    handle.start()
    handle.abandon()


def _estimate(messages: list[dict], options: SendOptions) -> int:
    """The reservation: the prompt (the functions offered included) and the answer's cap."""
    return quota.estimate_tokens(messages, options.max_tokens) + options.tools_prompt_tokens()


async def _prepare_on_loop(caller: Caller, content: str, history: list[dict], options: SendOptions, started: float) -> SendHandle | None:
    """The gateway's usual call (an API token, no thread) without a thread hop: keys and routing
    from the per-org cache, the quota reserved on the event loop. None when it needs more than
    that (a cache miss, the first candidate over its quota): `_prepare` then does it all."""
    keys = active_keys_cached(caller.org_id)
    routing = org_routing_cached(caller.org_id)
    if keys is None or routing is None:
        return None
    plan = _plan(caller, content, max(len(history) - 1, 0), keys, routing, options, history)
    if not plan.candidates:
        return None
    messages = list(history)  # a gateway conversation goes to the provider as the client wrote it
    estimated = _estimate(messages, options)
    try:
        reservation = await quota.quota_reserve_async(org_id=caller.org_id, provider=plan.candidates[0].provider, estimated_tokens=estimated)
    except quota.QuotaExceeded:
        return None
    return SendHandle(
        caller=caller, options=options, plan=plan, keys=keys, candidate_index=0, reservation=reservation, messages=messages,
        thread_id=None, user_message_id=None, assistant_message_id=None, started=started, prepare_ms=_overhead_ms(started),
        usage_headers=quota.rate_limit_headers(reservation.usage),
    )


def _plan(caller: Caller, content: str, message_count: int, keys: dict, routing, options: SendOptions,
          history: list[dict] | None = None) -> RoutePlan:
    # Functions offered, or a conversation that holds calls and their results: only a provider
    # that calls functions can take it on.
    uses_tools = options.tools is not None or any("tool_calls" in message or message["role"] == "tool" for message in history or ())
    return plan_route(
        text=content,
        message_count=message_count,
        keys=keys,
        may_use=lambda provider: user_may_use_provider(user_id=caller.user_id, provider=provider),
        routing=routing,
        explicit_provider=options.provider,
        explicit_model=options.model,
        wants_json=options.response_format is not None,
        tools=uses_tools,
        logit_bias=options.sampling is not None and options.sampling.logit_bias is not None,
    )


def _prepare(caller: Caller, content: str, thread_id: int | None, history: list[dict] | None, options: SendOptions, started: float) -> SendHandle:
    with tenant_context(caller.org_id):
        thread = thread_get(thread_id=thread_id) if thread_id is not None else None
        if thread is not None and thread.archived:
            raise Conflict("This thread is archived: unarchive it to continue the conversation.", code="thread_archived")
        keys = active_keys()
        message_count = (thread.next_seq - 1) if thread else max(len(history) - 1, 0)
        plan = _plan(caller, content, message_count, keys, org_routing(), options, history)
        if thread is not None:
            window = _context_window(caller.org_id)
            prior = [{"role": m.role, "content": m.content} for m in context_messages(thread=thread, window=window, before_seq=thread.next_seq)]
            conversation = [*prior, {"role": "user", "content": content}]
        else:
            conversation = list(history)
        recalled = memory.recall_for(org_id=caller.org_id, thread=thread, text=content) if thread is not None else []
        plan.recalled = [r.to_dict() for r in recalled]
        # A thread is DAC's conversation: its system prompt and the org's memory. A gateway
        # conversation without one is the client's, sent as it wrote it (its own system prompt, or
        # none), as an OpenAI-compatible endpoint must.
        messages = _with_system_prompt(conversation, recalled) if thread is not None else conversation
        estimated = _estimate(messages, options)
        index, reservation = _reserve_from(plan, 0, caller.org_id, estimated)
        try:
            user_id, assistant_id = _save_exchange(thread, caller, content, plan) if thread is not None else (None, None)
        except BaseException:
            quota.quota_release(reservation)
            raise
        if recalled:
            memory.record_provenance(org_id=caller.org_id, actor=caller.actor, message_id=assistant_id, thread_id=thread.pk, recalled=recalled)
        usage = reservation.usage or quota.quota_usage(org_id=caller.org_id, provider=reservation.provider)
        usage_headers = quota.rate_limit_headers(usage)
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
        prepare_ms=_overhead_ms(started),
        usage_headers=usage_headers,
    )
    return handle


def _overhead_ms(started: float) -> float:
    """DAC's own time before the provider call (X-DAC-Overhead-Ms of pages and the REST API;
    the gateway reports the whole of its own time)."""
    return (time.perf_counter() - started) * 1000


_context_windows: PerOrgCache[int] = PerOrgCache("context_window", Organization)


def _context_window(org_id: int) -> int:
    return _context_windows.get(org_id, lambda: Organization.objects.values_list("context_window", flat=True).get(pk=org_id))


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
    """Reserve quota on the first candidate from `start` that has room; skip the others. When
    none has, the refusal of the first (the provider routing chose) is raised, naming the others'
    too: each may need something else (a 429 waits for the reset, a request over a provider's
    whole daily limit needs a lower max_tokens)."""
    refusals: list[quota.QuotaExceeded] = []
    for index in range(start, len(plan.candidates)):
        candidate = plan.candidates[index]
        try:
            return index, quota.quota_reserve(org_id=org_id, provider=candidate.provider, estimated_tokens=estimated)
        except quota.QuotaExceeded as exc:
            plan.skip(candidate.provider, f"over its daily {exc.limit_kind} limit")
            refusals.append(exc)
    if refusals:
        first = refusals[0]
        if len(refusals) > 1:
            first.message += " The other providers could not take it either: " + " ".join(
                f"{other.provider}: {other.message}" for other in refusals[1:])
        # The refusal says where the caller stands too, like every provider-calling response.
        usage = quota.quota_usage(org_id=org_id, provider=first.provider)
        first.headers.update(quota.rate_limit_headers(usage))
        raise first
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
