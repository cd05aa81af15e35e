"""What the caller of `message_send` holds while the answer is produced: `SendHandle`, the
events it reads (Delta, Answered, Finished, Failed), the answer they carry, and the answers
this process is still producing (drained on shutdown: dac/asgi.py).

threads/services/send.py makes a handle (phase one); threads/services/answer.py produces its
answer (phase two).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.utils import timezone

from audit.services import Actor
from providers.adapters import ResponseFormat, Sampling, ToolCall, ToolCallPart, Tools
from providers.services import quota
from routing.services import Candidate, RoutePlan
from threads.models import Message, Status

logger = logging.getLogger(__name__)

# Answer tasks run detached from the request; keep a reference so they are not collected.
_RUNNING: set[asyncio.Task] = set()
# The event loops that serve requests for the life of the process (dac.asgi's lifespan adds its
# own): an answer prepared on one of them may start at once (see `SendHandle.start_if_served`).
_SERVING_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# Most events in one of `SendHandle.event_batches()` (a reader far behind a long answer gets it
# in parts of this size, not all in one piece).
EVENT_BATCH_MAX = 256


def serving_loop_register() -> None:
    """The running loop serves this process's requests until it stops (called at ASGI startup)."""
    _SERVING_LOOPS.add(asyncio.get_running_loop())


async def answers_running_finish(timeout: float) -> None:
    """Wait, at most `timeout` seconds, for the answers this event loop is still producing (on
    shutdown: an answer whose client went away is still saved and audited); log what is left."""
    loop = asyncio.get_running_loop()
    running = [task for task in _RUNNING if task.get_loop() is loop and not task.done()]
    if not running:
        return
    logger.info("waiting up to %s s for %d answer(s) still running", timeout, len(running))
    _, pending = await asyncio.wait(running, timeout=timeout)
    if pending:
        logger.warning("%d answer(s) still running after %s s are left to be cancelled", len(pending), timeout)


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
    stop: tuple[str, ...] = ()  # the answer ends before the first of these
    response_format: ResponseFormat | None = None  # JSON asked for (the gateway's response_format)
    tools: Tools | None = None  # functions the model may call (the gateway without a thread)
    sampling: Sampling | None = None  # top_p, seed, penalties (the gateway's)

    def tools_prompt_tokens(self) -> int:
        """What the functions offered add to the prompt (estimated, as the messages are)."""
        return quota.estimate_prompt_tokens(json.dumps(self.tools.functions)) if self.tools is not None else 0


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
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_text: str = ""  # the names and arguments of its tool calls (streamed so far, or all)
    finish_reason: str = ""
    error_category: str = ""
    error_message: str = ""
    retry_after: float | None = None  # a failed answer's: when the provider said to come back (seconds)
    routing: dict = field(default_factory=dict)
    message_id: int | None = None
    stopped: bool = False
    # Stopped before its provider request went out (its reader left first, or between retries):
    # the call's quota reservation is given back.
    not_sent: bool = False


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call, as a stream delivers it."""

    part: ToolCallPart


@dataclass(frozen=True)
class Answered:
    """A plain call's answer (the same object Finished or Failed will carry) while it is being
    recorded: lets the caller build its response meanwhile. Only Finished confirms it; if the
    answer cannot be recorded, Failed follows with the answer marked failed."""

    answer: Answer


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
    stop_checked_at: float = 0.0
    abandoned: bool = False  # the reader went away and nothing keeps the answer (see abandon)
    delivered: bool = False  # the reader has taken the final event (Finished or Failed)
    provider_waiter: asyncio.Task | None = None  # the task awaiting the provider (abandon cancels it)
    calls: list = field(default_factory=list)  # answer.CallRecord of each provider call so far
    measurements: list = field(default_factory=list)  # metrics of the calls not yet recorded
    request_hashes: dict = field(default_factory=dict)  # (provider, model) → sha256 of the request
    audited: bool = False  # the calls and the routing decision are in the audit log
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
            from threads.services.answer import answer_task

            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(answer_task(self))
            _RUNNING.add(self.task)
            self.task.add_done_callback(_RUNNING.discard)

    def start_if_served(self) -> None:
        """Start now when the running loop is the server's, which will read the events too. A
        streamed response's body is what would start it otherwise, and a client that leaves
        before the body is read (while the view or the response's head is still on its way)
        left the reservation unsettled and a thread's answer 'streaming' until the stale sweep.
        On another loop (`async_to_sync` without a server: a test client, a command) the loop
        ends with the call, so the answer still starts with the body."""
        if asyncio.get_running_loop() in _SERVING_LOOPS:
            self.start()

    def abandon(self) -> None:
        """The reader went away. An answer kept in a thread still completes, to be read there;
        any other stops (the provider request, or the reading of its stream, is cancelled even
        while the provider stalls), is recorded with what arrived, and is neither retried nor
        moved to another provider: going on would only spend the org's tokens. Once the reader
        has the answer's end, leaving is not abandoning: nothing happens."""
        if self.thread_id is None and not self.delivered:
            self.abandoned = True
            if self.provider_waiter is not None:
                self.provider_waiter.cancel()

    async def events(self) -> AsyncIterator[Delta | ToolCallDelta | Answered | Finished | Failed]:
        """Deltas (and tool call pieces) as they arrive (streams), Answered (plain calls that got
        an answer), then one Finished or Failed."""
        self.start()
        while True:
            event = await self.queue.get()
            if isinstance(event, (Finished, Failed)):
                self.delivered = True
                yield event
                return
            yield event

    async def event_batches(self) -> AsyncIterator[list[Delta | ToolCallDelta | Answered | Finished | Failed]]:
        """`events()` in batches: each holds the events that had arrived when the reader asked
        (one at least, EVENT_BATCH_MAX at most), so what arrived together can be sent in one
        write; the answer's end (Finished or Failed) comes last, alone. Nothing waits for more:
        a batch is what is already there."""
        self.start()
        pending = await self.queue.get()
        while not isinstance(pending, (Finished, Failed)):
            batch, pending = [pending], None
            while pending is None and len(batch) < EVENT_BATCH_MAX and not self.queue.empty():
                event = self.queue.get_nowait()
                if isinstance(event, (Finished, Failed)):
                    pending = event  # the end goes alone, in the next batch
                else:
                    batch.append(event)
            yield batch
            if pending is None:
                pending = await self.queue.get()
        self.delivered = True
        yield [pending]

    def usage_headers_now(self) -> dict:
        """X-RateLimit-* as they stand now (after the answer: with its real token count)."""
        usage = quota.quota_usage(org_id=self.caller.org_id, provider=self.reservation.provider)
        return quota.rate_limit_headers(usage)

    def response_headers(self, usage_headers: dict | None = None) -> dict:
        """What every provider-calling response says: quota state, DAC's overhead, the route."""
        return {
            **(usage_headers or self.usage_headers),
            "X-DAC-Overhead-Ms": f"{self.prepare_ms:.2f}",
            "X-DAC-Provider": self.candidate.provider,
            "X-DAC-Rule": self.plan.rule,
        }

    def message_from(self, answer: Answer) -> Message:
        """The saved answer, or (when the database cannot be read) the same built from memory."""
        try:
            return Message.objects.get(pk=self.assistant_message_id)
        except DatabaseError:
            return Message(
                id=self.assistant_message_id, org_id=self.caller.org_id, thread_id=self.thread_id, role="assistant",
                content=answer.text, status=answer.status, provider=answer.provider, model=answer.model,
                latency_ms=answer.latency_ms, input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                citations=answer.citations, routing=answer.routing, error_category=answer.error_category,
                error_message=answer.error_message, created_at=timezone.now(),
            )

    async def wait(self, on_answered: Callable[[Answer], None] | None = None) -> Answer:
        """The whole answer (starts it if needed); `on_answered` is called with it as soon as it
        is known (Answered), while it is recorded. The events are closed here, not left to the
        event loop's finalizer (a thread-safe wake-up and a task on every call)."""
        async with contextlib.aclosing(self.events()) as events:
            async for event in events:
                if isinstance(event, Answered) and on_answered is not None:
                    on_answered(event.answer)
                elif isinstance(event, (Finished, Failed)):
                    return event.answer
        raise RuntimeError("answer stream ended without a result")  # pragma: no cover
