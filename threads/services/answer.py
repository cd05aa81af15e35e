"""Phase two of `message_send`: produce the answer.

Runs as a task detached from the request (see SendHandle.start): calls the chosen provider
with bounded retries on timeout and 5xx, falls back to the next candidate on a failure before
the first token, honours a stop request; then threads/services/record.py reconciles the quota,
saves the answer (complete, or failed with what arrived), audits and measures every call. Every
database step goes through `db_step`, so no connection is held while a provider answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError

from dac.db.steps import db_step
from dac.errors import ApplicationError, NotFound, ValidationFailed
from providers import vault
from providers.adapters import ProviderError, get_adapter
from providers.services import quota
from providers.services.keys import provider_key_plaintext
from providers.urlsafety import ensure_safe_base_url
from routing.services import Candidate
from tenants.context import tenant_context
from threads.models import Message, Status
from threads.services import record
from threads.services.handle import Answer, Delta, Failed, Finished, SendHandle, ToolCallDelta
from threads.services.send import _reserve_from

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({"timeout", "unavailable"})
# Before the first token these move on to the next provider; content filtering does not:
# routing around a provider's safety decision is not ours to do.
FALLBACK = frozenset({"auth", "bad_request", "rate_limited", "quota_exceeded", "timeout", "unavailable"})
STOP_KEY = "dac:stop:{message_id}"
STOP_CHECK_SECONDS = 0.3
STOPPED_MESSAGE = "Stopped."
# Stop requests seen by this process (the request may reach any worker: Redis carries it too).
_LOCAL_STOPS: set[int] = set()


async def answer_task(handle: SendHandle) -> None:
    """Phase two: call providers along the chain; always ends with Finished or Failed."""
    answer = Answer()
    try:
        await _answer_chain(handle, answer)
    except Exception as exc:  # a bug or a database outage must never leave the reader waiting
        logger.exception("message_send: answer task failed")
        answer.status = Status.FAILED
        if isinstance(exc, DatabaseError):
            # The answer could not be recorded (audit log, quota, message), so it is not delivered.
            answer.error_category = "unrecorded"
            answer.error_message = "DAC's database is unavailable, so the answer could not be recorded. Try again in a moment."
        else:
            answer.error_category = "internal"
            answer.error_message = "DAC failed while answering; the error was logged. Try again."
        handle.queue.put_nowait(Failed(answer))
        await _save_failure_with_retries(handle, answer)


async def _save_failure_with_retries(handle: SendHandle, answer: Answer) -> None:
    """Keep trying to record the failure while the database is away (bounded); past that, the
    stale-answer sweep marks the row interrupted."""
    for pause in (0.5, 1, 2, 4, 8, 15):
        try:
            await record.finish(handle, answer)
            return
        except Exception:
            logger.warning("message_send: could not save the failed answer yet; retrying in %s s", pause)
            await asyncio.sleep(pause)
    logger.error("message_send: gave up saving the failed answer of message %s", handle.assistant_message_id)


async def _answer_chain(handle: SendHandle, answer: Answer) -> None:
    while True:
        candidate = handle.candidate
        error, produced = await _call_candidate(handle, candidate, answer)
        if error is None:
            if answer.stopped and handle.assistant_message_id is not None:
                _LOCAL_STOPS.discard(handle.assistant_message_id)
                await sync_to_async(cache.delete, thread_sensitive=False)(STOP_KEY.format(message_id=handle.assistant_message_id))
            answer.status = Status.COMPLETE
            await record.finish(handle, answer)
            handle.queue.put_nowait(Finished(answer))
            return
        if produced or error.category not in FALLBACK or handle.plan.explicit or handle.abandoned:
            break
        handle.plan.skip(candidate.provider, f"failed: {error.category}")
        estimated = handle.reservation.tokens
        await quota.quota_release_async(handle.reservation)
        try:
            index, reservation, handle.usage_headers = await db_step(_reserve_next, handle, estimated)
        except ApplicationError:
            break
        handle.candidate_index, handle.reservation = index, reservation
        answer.text = ""
    answer.status = Status.FAILED
    answer.error_category = error.category
    answer.error_message = _user_message_for(error, candidate.provider, produced)
    answer.retry_after = error.retry_after
    await record.finish(handle, answer)
    handle.queue.put_nowait(Failed(answer))


def _reserve_next(handle: SendHandle, estimated: int):
    """The next candidate that has quota left: its index, its reservation and the X-RateLimit-*
    headers that now describe the call (the provider it falls back to, not the one that failed)."""
    org_id = handle.caller.org_id
    with tenant_context(org_id):
        index, reservation = _reserve_from(handle.plan, handle.candidate_index + 1, org_id, estimated)
        usage = reservation.usage or quota.quota_usage(org_id=org_id, provider=reservation.provider)
        return index, reservation, quota.rate_limit_headers(usage)


async def _call_candidate(handle: SendHandle, candidate: Candidate, answer: Answer) -> tuple[ProviderError | None, bool]:
    """One provider, with bounded retries on timeout/5xx before the first token.

    Returns (error or None, whether any text reached the caller)."""
    options = handle.options
    key = handle.keys.get(candidate.provider)
    try:
        api_key = provider_key_plaintext(key) if key else None
        base_url = (await ensure_safe_base_url(key.base_url) if key and key.base_url else None) or None
    except (vault.VaultError, ValidationFailed) as exc:
        error = ProviderError("auth" if isinstance(exc, vault.VaultError) else "bad_request", None, str(exc))
        record.note_call(handle, candidate, None, error, 0.0, None)
        return error, False
    messages = await _with_signatures(handle, candidate)
    # An org's own base URL: the addresses connected to are checked too (DNS may have changed).
    adapter_options = ({"chunk_delay": settings.DAC_DEMO_STREAM_DELAY_MS / 1000} if candidate.provider == "demo"
                       else {"check_addresses": True} if base_url else {})
    adapter = get_adapter(candidate.provider, api_key=api_key, base_url=base_url, **adapter_options)
    attempts = 1 + settings.DAC_PROVIDER_RETRIES
    produced = False
    # The request's hash (audited with the call) is taken while the provider works: queued
    # behind the first step of the call, which sends the request on a kept-alive connection
    # (on a new one it runs while connecting).
    asyncio.get_running_loop().call_soon(record.request_hash, handle, candidate)
    first_started = time.perf_counter()  # a failure's latency is what the caller waited, retries included
    for attempt in range(attempts):
        call_started = time.perf_counter()
        first_token_at = None
        if handle.abandoned:  # its reader left before this attempt: no new provider request
            _stopped(answer, candidate, call_started, None)
            answer.not_sent = True
            return None, produced
        watching = _watch_for_stop(handle, asyncio.current_task())
        try:
            handle.provider_waiter = asyncio.current_task()  # abandon() cancels it: a stalled provider is not waited for
            try:
                if options.stream:
                    result = None
                    stream = adapter.stream(
                        messages=messages, model=candidate.model, max_tokens=options.max_tokens, temperature=options.temperature,
                        stop=options.stop, response_format=options.response_format, tools=options.tools, sampling=options.sampling,
                        timeout=settings.DAC_PROVIDER_TIMEOUT)
                    async with contextlib.aclosing(stream):
                        async for event in stream:
                            if await _stop_requested(handle):
                                answer.stopped = True
                                break
                            if event.delta:
                                produced = True
                                answer.text += event.delta
                                handle.queue.put_nowait(Delta(event.delta))
                                if first_token_at is None:
                                    first_token_at = time.perf_counter()
                                    # The reader sends the first token now, not after the rest of
                                    # what arrived with it has been parsed.
                                    await asyncio.sleep(0)
                            elif event.tool_call is not None:
                                produced = True
                                answer.tool_call_text += (event.tool_call.name or "") + event.tool_call.arguments
                                handle.queue.put_nowait(ToolCallDelta(event.tool_call))
                                if first_token_at is None:
                                    first_token_at = time.perf_counter()
                            if event.result is not None:
                                result = event.result
                else:
                    result = await adapter.complete(
                        messages=messages, model=candidate.model, max_tokens=options.max_tokens, temperature=options.temperature,
                        stop=options.stop, response_format=options.response_format, tools=options.tools, sampling=options.sampling,
                        timeout=settings.DAC_PROVIDER_TIMEOUT)
            except asyncio.CancelledError:
                stop_pressed = watching is not None and watching.done() and not watching.cancelled()
                if not (handle.abandoned or stop_pressed) or asyncio.current_task().uncancel() > 0:
                    raise  # cancelled for another reason
                answer.stopped = True
            finally:
                handle.provider_waiter = None
                if watching is not None:
                    watching.cancel()
            if answer.stopped:
                _stopped(answer, candidate, call_started, first_token_at)
                record.note_call(handle, candidate, None, None, answer.latency_ms or 0.0, answer.first_token_ms)
                return None, produced
        except ProviderError as error:
            elapsed = (time.perf_counter() - call_started) * 1000
            record.note_call(handle, candidate, None, error, elapsed, _ms_since(call_started, first_token_at))
            if produced or error.category not in RETRYABLE or attempt == attempts - 1 or handle.abandoned:
                _fill_failure(answer, candidate, (time.perf_counter() - first_started) * 1000)
                return error, produced
            await asyncio.sleep(_backoff(attempt, error))
            continue
        elapsed = (time.perf_counter() - call_started) * 1000
        await _keep_signatures(handle, result)
        _fill_success(answer, candidate, result, elapsed, _ms_since(call_started, first_token_at), handle)
        record.note_call(handle, candidate, result, None, elapsed, answer.first_token_ms)
        return None, produced
    raise AssertionError("unreachable")  # pragma: no cover


# A tool call's thought signature (Gemini), kept for the request that brings the call back.
SIGNATURE_KEY = "dac:toolsig:{org_id}:{call_id}"
SIGNATURE_SECONDS = 24 * 3600


async def _keep_signatures(handle: SendHandle, result) -> None:
    """Clients send a call back as OpenAI shaped it (id, name, arguments): what else its provider
    needs with it (Gemini 3 refuses a call without its thought signature) is kept here, by id."""
    signatures = {SIGNATURE_KEY.format(org_id=handle.caller.org_id, call_id=call.id): (result.model, call.signature)
                  for call in result.tool_calls if call.signature}
    if signatures:
        await sync_to_async(cache.set_many, thread_sensitive=False)(signatures, timeout=SIGNATURE_SECONDS)


async def _with_signatures(handle: SendHandle, candidate: Candidate) -> list[dict]:
    """The conversation for `candidate`: for Gemini, each call it made earlier carries its kept
    thought signature (one a model issued is valid for that model only); the others get the
    conversation as the client sent it."""
    ids = [call["id"] for message in handle.messages for call in message.get("tool_calls") or ()]
    if candidate.provider != "gemini" or not ids:
        return handle.messages
    keys = {call_id: SIGNATURE_KEY.format(org_id=handle.caller.org_id, call_id=call_id) for call_id in ids}
    kept = await sync_to_async(cache.get_many, thread_sensitive=False)(list(keys.values()))

    def signature(call_id: str) -> str | None:
        model, value = kept.get(keys[call_id], (None, None))
        return value if model and model.removeprefix("models/").startswith(candidate.model.removeprefix("models/")) else None

    return [{**message, "tool_calls": [{**call, "thought_signature": signature(call["id"])} for call in message["tool_calls"]]}
            if message.get("tool_calls") else message for message in handle.messages]


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
    answer.tool_calls = list(result.tool_calls)
    answer.tool_call_text = "".join(call.name + call.arguments for call in result.tool_calls)
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


def _stopped(answer: Answer, candidate: Candidate, call_started: float, first_token_at: float | None) -> None:
    """The reader pressed Stop (or went away): keep what arrived as the answer."""
    answer.stopped = True
    _fill_failure(answer, candidate, (time.perf_counter() - call_started) * 1000)
    answer.first_token_ms = _ms_since(call_started, first_token_at)
    answer.finish_reason = "stop"
    answer.error_message = STOPPED_MESSAGE


def _watch_for_stop(handle: SendHandle, waiter: asyncio.Task) -> asyncio.Task | None:
    """A thread's answer: Stop takes effect at once, also while the provider has sent nothing yet
    (a slow first byte, a reasoning model thinking), not at its next piece. Polls the flag
    message_stop sets (any worker) as the stream loop does, and cancels the waiting call; the
    task ends (not cancelled) only when it did that."""
    if handle.assistant_message_id is None:
        return None  # nothing can press Stop on a call without a thread

    async def watch() -> None:
        while True:
            await asyncio.sleep(STOP_CHECK_SECONDS)
            if await _stop_requested(handle):
                waiter.cancel()
                return

    return asyncio.ensure_future(watch())


async def _stop_requested(handle: SendHandle) -> bool:
    if handle.abandoned:
        return True
    message_id = handle.assistant_message_id
    if message_id is None:
        return False
    if message_id in _LOCAL_STOPS:
        return True
    now = time.monotonic()
    if now - handle.stop_checked_at < STOP_CHECK_SECONDS:
        return False
    handle.stop_checked_at = now
    return bool(await sync_to_async(cache.get, thread_sensitive=False)(STOP_KEY.format(message_id=message_id)))


def message_stop(*, thread_id: int, message_id: int) -> bool:
    """Ask a running answer to stop (whichever worker runs it). False if it is not running."""
    message = Message.objects.filter(pk=message_id, thread_id=thread_id, role="assistant").first()
    if message is None:
        raise NotFound("No such message.")
    if message.status != Status.STREAMING:
        return False
    _LOCAL_STOPS.add(message_id)
    cache.set(STOP_KEY.format(message_id=message_id), 1, timeout=600)
    return True
