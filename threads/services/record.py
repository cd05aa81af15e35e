"""Recording an answer's outcome (phase two of `message_send`, beside threads/services/answer.py):
each provider call noted for the audit log and the metrics as it ends (`note_call`), then, before
the caller hears the outcome, the calls and the routing decision audited (durable), the quota
settled and the answer saved, side by side (`finish`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.services import AuditEvent, audit_records_queued, sha256_hex
from dac.db.steps import db_step
from metrics.services import provider_call_record
from providers.adapters import ProviderError
from providers.models import ProviderKey
from providers.services import quota
from routing.services import Candidate
from tenants.context import tenant_context
from threads import memory
from threads.models import Message, Status, Thread
from threads.services.handle import Answer, Answered, SendHandle


def request_hash(handle: SendHandle, candidate: Candidate) -> str:
    """sha256 of what was asked of this candidate (taken once per candidate)."""
    key = (candidate.provider, candidate.model)
    if key not in handle.request_hashes:
        options = handle.options
        body = {"provider": candidate.provider, "model": candidate.model, "messages": handle.messages, "max_tokens": options.max_tokens, "temperature": options.temperature}
        # What else shapes the answer, when asked for (an ordinary call's hash is unchanged).
        if options.stop:
            body["stop"] = list(options.stop)
        if options.response_format is not None:  # (not asdict: it copies a schema level by level, recursively)
            body["response_format"] = {name: getattr(options.response_format, name) for name in ("type", "name", "schema", "strict", "description")}
        if options.tools is not None:
            body["tools"] = {"functions": options.tools.functions, "choice": options.tools.choice, "parallel": options.tools.parallel}
        if options.sampling is not None:
            body["sampling"] = options.sampling.given()
        handle.request_hashes[key] = sha256_hex(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return handle.request_hashes[key]


@dataclass(frozen=True)
class CallRecord:
    """One provider call, kept in memory until `finish` writes them all in one step."""

    audit: AuditEvent
    key_id: int | None


def note_call(handle: SendHandle, candidate: Candidate, result, error: ProviderError | None, elapsed_ms: float, first_token_ms: int | None) -> None:
    """Note one provider call (success or failure) for the audit log and metrics. Never the plaintext."""
    outcome = "ok" if error is None else error.category
    model = (result.model if result else None) or candidate.model
    details = {
        "provider": candidate.provider,
        "model": model,
        "outcome": outcome,
        "latency_ms": round(elapsed_ms),
        "input_tokens": result.input_tokens if result else None,
        "output_tokens": result.output_tokens if result else None,
        "thread_id": handle.thread_id,
        "message_id": handle.assistant_message_id,
    }
    if error is not None:
        details["status"] = error.status
    if handle.abandoned:
        details["abandoned"] = True  # its reader went away: DAC stopped it (SendHandle.abandon)
    if result is not None and result.tool_calls:
        details["tool_calls"] = [call.name for call in result.tool_calls]  # which functions, not with what
    audit = AuditEvent(
        "provider.call", f"provider:{candidate.provider}", details,
        request_hash=request_hash(handle, candidate), response_hash=_response_hash(result) if result else "",
    )
    metrics = {
        "provider": candidate.provider, "model": model or "", "outcome": outcome, "latency_ms": elapsed_ms,
        "first_token_ms": first_token_ms, "input_tokens": details["input_tokens"],
        "output_tokens": details["output_tokens"], "streamed": handle.options.stream,
    }
    handle.calls.append(CallRecord(audit, candidate.key_id if error is None else None))
    handle.measurements.append(metrics)


def _response_hash(result) -> str:
    """sha256 of the answer: its text, and its tool calls when it made any."""
    if not result.tool_calls:
        return sha256_hex(result.text)
    calls = [{"id": call.id, "name": call.name, "arguments": call.arguments} for call in result.tool_calls]
    return sha256_hex(json.dumps({"text": result.text, "tool_calls": calls}, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


# last_used_at is a hint: written at most once a minute per key, not on every call.
KEY_USED_RESOLUTION = 60.0
_key_used_at: dict[int, float] = {}


async def finish(handle: SendHandle, answer: Answer) -> None:
    """Record the outcome before the caller hears it: the provider calls and the routing
    decision audited (durable), the quota reconciled and the answer saved (complete, or failed
    with what arrived), side by side. While they are written, the calls are measured and a
    plain call's caller is handed the answer to prepare its response (Answered)."""
    if not answer.routing:
        answer.routing = handle.plan.to_dict(chosen=handle.candidate)
    if not handle.audited:
        decision = AuditEvent(
            "routing.decision", f"thread:{handle.thread_id}" if handle.thread_id else "gateway",
            {**answer.routing, "outcome": "abandoned" if handle.abandoned else answer.status},
        )
        events = [*(call.audit for call in handle.calls), decision]
        # The audit write goes out first: the answer waits on its commit.
        audit = audit_records_queued(org_id=handle.caller.org_id, actor=handle.caller.actor, events=events)
        recording = asyncio.gather(audit, _record_answer(handle, answer), return_exceptions=True)
        _meanwhile(handle, answer)
        audited, saved = await recording
        if not isinstance(audited, BaseException):
            handle.audited = True
        for outcome in (audited, saved):
            if isinstance(outcome, BaseException):
                raise outcome
    else:
        recording = _record_answer(handle, answer)
        _meanwhile(handle, answer)
        await recording
    handle.calls.clear()


def _meanwhile(handle: SendHandle, answer: Answer) -> None:
    """What runs while the outcome is written (queued behind the writes, so they go out first):
    the calls' metrics and, for a plain answer, Answered to its reader. The calls are measured
    whether or not their record then commits (they happened), and once: a retried `finish` does
    not measure them again."""
    measurements, handle.measurements = handle.measurements, []
    if measurements:
        asyncio.get_running_loop().call_soon(_measure, handle.caller.org_id, measurements)
    if not handle.options.stream and answer.status == Status.COMPLETE:
        handle.queue.put_nowait(Answered(answer))


def _measure(org_id: int, measurements: list[dict]) -> None:
    for metrics in measurements:
        provider_call_record(org_id=org_id, **metrics)


async def _record_answer(handle: SendHandle, answer: Answer) -> None:
    """`_save_answer`; on the event loop when all there is to do is settle the quota (a gateway
    call without a thread, no key's last use to write)."""
    if handle.assistant_message_id is None and not _keys_due(handle):
        used, keep = _quota_settlement(handle, answer)
        if keep:
            await quota.quota_reconcile_async(handle.reservation, actual_tokens=used)
        else:
            await quota.quota_release_async(handle.reservation)
        return
    await db_step(_save_answer, handle, answer)


def _quota_settlement(handle: SendHandle, answer: Answer) -> tuple[int | None, bool]:
    """(tokens used, None for the reservation's estimate; whether the call counts at all).

    Released when no request went out (its reader left first) or the call failed with nothing
    to show. What the provider reported, when it did (a half it left out estimated). The
    estimate for a plain call whose caller left while its provider worked: the provider has the
    whole request and most likely answers it in full. Otherwise (a stream stopped or cut, a
    provider that reports no usage) the prompt and the text that arrived: a provider stops
    generating when its stream is closed, and the estimate (the prompt plus max_tokens) would
    charge every Stop as a full-length answer."""
    produced = answer.text + answer.tool_call_text
    if answer.not_sent or (answer.status != Status.COMPLETE and not produced):
        return None, False
    input_tokens, output_tokens = answer.input_tokens, answer.output_tokens
    if not (input_tokens or output_tokens):
        if answer.stopped and not handle.options.stream:
            return None, True
        input_tokens = output_tokens = None
    if input_tokens is None:
        input_tokens = quota.estimate_prompt_tokens(handle.messages) + handle.options.tools_prompt_tokens()
    if output_tokens is None:
        output_tokens = quota.estimate_answer_tokens(produced)
    return input_tokens + output_tokens, True


def _keys_due(handle: SendHandle) -> list[int]:
    """Keys of this answer's successful calls whose last use was last written over a minute ago."""
    now = time.monotonic()
    return [call.key_id for call in handle.calls if call.key_id and now - _key_used_at.get(call.key_id, 0.0) > KEY_USED_RESOLUTION]


def _save_answer(handle: SendHandle, answer: Answer) -> None:
    """Reconcile the quota and save the answer's message (when the exchange has a thread)."""
    org_id = handle.caller.org_id
    with tenant_context(org_id):
        used, keep = _quota_settlement(handle, answer)
        if keep:
            quota.quota_reconcile(handle.reservation, actual_tokens=used)
        else:
            quota.quota_release(handle.reservation)
        for key_id in _keys_due(handle):
            _key_used_at[key_id] = time.monotonic()
            ProviderKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
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
