"""The OpenAI-compatible gateway: `POST /v1/chat/completions` and `GET /v1/models`.

Any OpenAI client (the official SDK included) can use DAC with a DAC API token. It is one more
face of `message_send`: routing, quota, fallback, audit and metrics are the pipeline's, not
copies. `model: "auto"` routes by the rules; `"<provider>/<model>"` pins a provider. With an
`X-DAC-Thread-Id` header the exchange is saved to that thread; without it nothing is stored
(the call is still audited, metered and rate-limited). Errors use OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
import secrets
import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from dac.db.steps import db_step
from dac.errors import ApplicationError, openai_error_body, openai_error_response
from dac.storable_text import unstorable
from metrics.services import overhead_observe
from providers.adapters import ADAPTERS, REASONING_EFFORTS, ResponseFormat, Sampling, ToolCallPart, Tools
from tenants.authentication import bearer_token, token_org_bind
from tenants.context import Tenant, reset_tenant, set_tenant
from tenants.middleware import OrgHeaderInvalid
from tenants.services import TokenInvalid, api_token_authenticate, api_token_cached
from threads.models import Status
from threads.services import Caller, SendOptions, message_send
from threads.services.handle import Answer, Failed, Finished, SendHandle, ToolCallDelta
from threads.services.send import MAX_OUTPUT_TOKENS, is_temperature, is_token_cap, validate_history

MAX_BODY_BYTES = 2_000_000
# Provider failure category → (HTTP status, OpenAI error type).
_FAILURE_STATUS = {
    "timeout": (504, "timeout"),
    "unavailable": (503, "service_unavailable"),
    "rate_limited": (503, "service_unavailable"),
    "auth": (502, "upstream_auth_error"),
    "quota_exceeded": (502, "upstream_quota_exceeded"),
    "bad_request": (400, "invalid_request_error"),
    "content_filtered": (400, "content_filter"),
    "unrecorded": (503, "service_unavailable"),  # DAC's database is down: the answer is withheld
}
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        return openai_error_response(self.message, self.status, type_=self.type, code=self.code, param=self.param, headers=self.headers)


def _from_application_error(exc: ApplicationError) -> GatewayError:
    if exc.status == 429:
        return GatewayError(429, exc.message, type_="rate_limit_exceeded", code=exc.code, headers=exc.headers)
    if exc.status == 404:
        return GatewayError(404, exc.message, type_="invalid_request_error", code="not_found")
    if exc.status == 403:
        return GatewayError(403, exc.message, type_="permission_denied", code=exc.code)
    if exc.status >= 500:
        return GatewayError(503, exc.message, type_="service_unavailable", code=exc.code)
    param = next(iter(exc.detail), None) if isinstance(exc.detail, dict) else None
    return GatewayError(400, exc.message, code=exc.code, param=param)


async def _authenticate(request: HttpRequest):
    plaintext = bearer_token(request)
    if not plaintext:
        raise GatewayError(401, "Missing API key: send `Authorization: Bearer <DAC API token>`.", code="invalid_api_key")
    token = api_token_cached(plaintext)
    if token is None:
        try:
            token = await db_step(api_token_authenticate, plaintext=plaintext)
        except TokenInvalid as exc:
            raise GatewayError(401, str(exc), code="invalid_api_key") from None
    try:
        token_org_bind(request, token)
    except OrgHeaderInvalid as exc:
        raise GatewayError(exc.status, exc.message, code="not_found" if exc.status == 404 else None, param="X-Org-Id") from None
    return token


def _parse_model(model) -> tuple[str | None, str | None]:
    """'auto' → rules; 'provider/model' or 'provider' → pinned."""
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "model is required: use \"auto\" or \"<provider>/<model>\".", param="model")
    model = model.strip()
    if model == "auto":
        return None, None
    provider, _, name = model.partition("/")
    if provider not in ADAPTERS:
        raise GatewayError(
            400, f"Unknown model {model!r}: use \"auto\" or \"<provider>/<model>\" with a provider among {', '.join(ADAPTERS)}.",
            param="model", code="model_not_found",
        )
    if unstorable(name):  # it could be neither sent to a provider nor saved
        raise GatewayError(400, f"The model name {name!r} holds U+0000 or half a UTF-16 surrogate pair, which no provider can be sent.",
                           param="model")
    return provider, name or None


def _parse_body(request: HttpRequest) -> dict:
    too_large = GatewayError(413, f"Request body is larger than {MAX_BODY_BYTES:,} bytes.")
    try:
        raw = request.body
    except RequestDataTooBig:  # past Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE)
        raise too_large from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "The request body is not valid JSON.") from None
    except RecursionError:
        raise GatewayError(400, "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.")
    return body


# Request fields that change what the answer is (its shape, its count), which DAC's providers
# are not asked for: refused, not ignored, so a client never takes a plain-text answer for what
# it asked. A value meaning "the default" (n 1, no tools, text output...) passes.
_UNSUPPORTED = {
    "functions": "the legacy function calling: use tools", "function_call": "the legacy function calling: use tool_choice",
    "n": "several choices", "logprobs": "log probabilities", "top_logprobs": "log probabilities",
    "modalities": "audio output", "audio": "audio output", "prediction": "predicted outputs",
}
_DEFAULTS = {"n": (1,), "function_call": ("none", "auto"), "top_logprobs": (0,), "modalities": (["text"],)}
MAX_TOOLS = 128  # OpenAI's own limit
MAX_SCHEMA_DEPTH = 32  # deeper than any provider takes; bounds the work (and recursion) on a schema
MAX_STOP_SEQUENCES = 4  # OpenAI's own limit, which clients already keep to
MAX_LOGIT_BIAS = 1024  # tokens biased in one request: bounds the work; real uses bias a handful
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _refuse_unsupported(body: dict) -> None:
    for name, feature in _UNSUPPORTED.items():
        value = body.get(name)
        if value is None or value is False or value in ([], {}, "") or value in _DEFAULTS.get(name, ()):
            continue
        if name == "functions" and body.get("function_call") == "none":
            continue  # offered but not to be called: a text answer is what was asked
        raise GatewayError(
            400, f"{name} is not supported: DAC's gateway answers with one text message ({feature} is not available here).",
            param=name, code="unsupported_parameter",
        )


def _stop(body: dict) -> tuple[str, ...]:
    """`stop`: a string or up to four; the answer ends before the first of them."""
    value = body.get("stop")
    sequences = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(sequences, list) or len(sequences) > MAX_STOP_SEQUENCES or not all(
            isinstance(sequence, str) and sequence for sequence in sequences):
        raise GatewayError(400, f"stop must be a non-empty string or an array of up to {MAX_STOP_SEQUENCES} of them.", param="stop")
    if any(unstorable(sequence) for sequence in sequences):
        raise GatewayError(400, "A stop sequence holds U+0000 or half a UTF-16 surrogate pair, which no provider can be sent.",
                           param="stop")
    return tuple(dict.fromkeys(sequences))


def _response_format(body: dict) -> ResponseFormat | None:
    """`response_format`: text (the default), any JSON object, or JSON matching a schema."""
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise GatewayError(400, 'response_format must be an object whose type is "text", "json_object" or "json_schema".',
                           param="response_format")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise GatewayError(400, "response_format.json_schema must be an object with a name and a schema.", param="response_format")
    name, schema, strict, description = spec.get("name"), spec.get("schema"), spec.get("strict"), spec.get("description")
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise GatewayError(400, "response_format.json_schema.name must be 1 to 64 letters, digits, _ or -.", param="response_format")
    if schema is not None and (not isinstance(schema, dict) or _too_deep(schema)):
        raise GatewayError(400, f"response_format.json_schema.schema must be a JSON Schema object nested at most {MAX_SCHEMA_DEPTH} deep.",
                           param="response_format")
    if strict is not None and not isinstance(strict, bool):
        raise GatewayError(400, "response_format.json_schema.strict must be a boolean.", param="response_format")
    if description is not None and not isinstance(description, str):
        raise GatewayError(400, "response_format.json_schema.description must be a string.", param="response_format")
    return ResponseFormat("json_schema", name=name, schema=schema, strict=strict, description=description)


def _tools(body: dict) -> Tools | None:
    """`tools` (functions in OpenAI's shape), `tool_choice` and `parallel_tool_calls`. None when no
    function is offered."""
    functions, choice, parallel = body.get("tools"), body.get("tool_choice"), body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise GatewayError(400, "parallel_tool_calls must be a boolean.", param="parallel_tool_calls")
    if functions in (None, []):
        if choice not in (None, "none", "auto"):
            raise GatewayError(400, "tool_choice names a function, but no tools are given.", param="tool_choice")
        return None
    if not isinstance(functions, list) or len(functions) > MAX_TOOLS:
        raise GatewayError(400, f"tools must be an array of at most {MAX_TOOLS} functions.", param="tools")
    kept = []
    for index, tool in enumerate(functions):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
            raise GatewayError(400, f'tools[{index}] must be {{"type": "function", "function": {{"name", ...}}}} with a name of '
                                    "1 to 64 letters, digits, _ or -.", param="tools")
        parameters = function.get("parameters")
        if parameters is not None and (not isinstance(parameters, dict) or _too_deep(parameters)):
            raise GatewayError(400, f"tools[{index}].function.parameters must be a JSON Schema object nested at most "
                                    f"{MAX_SCHEMA_DEPTH} deep.", param="tools")
        if function.get("description") is not None and not isinstance(function["description"], str):
            raise GatewayError(400, f"tools[{index}].function.description must be a string.", param="tools")
        kept.append({"type": "function", "function": {key: function[key] for key in ("name", "description", "parameters", "strict")
                                                      if function.get(key) is not None}})
    names = [tool["function"]["name"] for tool in kept]
    if len(set(names)) < len(names):
        raise GatewayError(400, "tools name the same function twice.", param="tools")
    if choice is None:
        choice = "auto"
    elif choice not in ("auto", "none", "required"):  # "none": offered, not to be called (some providers want them all the same)
        function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
        named = function.get("name") if isinstance(function, dict) else None
        if named not in names:
            raise GatewayError(400, 'tool_choice must be "auto", "none", "required" or {"type": "function", "function": '
                                    '{"name": ...}} naming one of the tools.', param="tool_choice")
        choice = {"type": "function", "function": {"name": named}}
    return Tools(tuple(kept), choice, parallel)


def _too_deep(value, depth: int = 0) -> bool:
    if depth > MAX_SCHEMA_DEPTH:
        return True
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_too_deep(child, depth + 1) for child in children)


# The sampling fields DAC passes on, with OpenAI's ranges.
_SAMPLING_RANGES = {"top_p": (0, 1), "presence_penalty": (-2, 2), "frequency_penalty": (-2, 2)}


def _sampling(body: dict) -> Sampling | None:
    """top_p, seed, presence_penalty, frequency_penalty, reasoning_effort and logit_bias, when
    given (null: the default)."""
    given = {}
    for name, (low, high) in _SAMPLING_RANGES.items():
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise GatewayError(400, f"{name} must be a number from {low} to {high}.", param=name)
            given[name] = value
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
            raise GatewayError(400, "seed must be an integer (64 bits).", param="seed")
        given["seed"] = seed
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise GatewayError(400, f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", param="reasoning_effort")
        given["reasoning_effort"] = effort
    bias = body.get("logit_bias")
    if bias:  # {} and null: no bias
        if not isinstance(bias, dict) or len(bias) > MAX_LOGIT_BIAS or not all(
                token.isascii() and token.isdigit() and len(token) <= 9 and not isinstance(value, bool)
                and isinstance(value, (int, float)) and -100 <= value <= 100 for token, value in bias.items()):
            raise GatewayError(400, f"logit_bias must map up to {MAX_LOGIT_BIAS:,} token ids (as strings) to numbers from -100 to 100.",
                               param="logit_bias")
        given["logit_bias"] = bias
    return Sampling(**given) if given else None


def _max_tokens(body: dict) -> int | None:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is not None and not is_token_cap(value):
        raise GatewayError(400, f"{name} must be an integer from 1 to {MAX_OUTPUT_TOKENS:,}.", param=name)
    return value


def _options(body: dict, provider: str | None, model: str | None) -> SendOptions:
    _refuse_unsupported(body)
    max_tokens = _max_tokens(body)
    temperature = body.get("temperature")
    if temperature is not None and not is_temperature(temperature):
        raise GatewayError(400, "temperature must be a number from 0 to 2.", param="temperature")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError(400, "stream must be a boolean.", param="stream")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise GatewayError(400, "messages must be a non-empty array.", param="messages")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise GatewayError(400, "stream_options must be an object.", param="stream_options")
    if not isinstance(stream_options.get("include_usage") or False, bool):  # "false" would read as true
        raise GatewayError(400, "stream_options.include_usage must be a boolean.", param="stream_options")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise GatewayError(400, "user must be a string.", param="user")
    return SendOptions(provider=provider, model=model, max_tokens=max_tokens, temperature=temperature, stream=stream,
                       tools=_tools(body), **answer_shape(body))


def answer_shape(body: dict) -> dict:
    """The request's fields that shape the answer and that a thread keeps as well as a bare call:
    `stop`, `response_format` and the sampling ones, as SendOptions' `stop`, `response_format` and
    `sampling`. GatewayError (400, naming the field) for one DAC cannot take. The threads API reads
    its message's fields with it too, so both check them alike."""
    return {"stop": _stop(body), "response_format": _response_format(body), "sampling": _sampling(body)}


def _new_message(messages: list) -> str:
    """With X-DAC-Thread-Id the thread keeps the conversation and the request's last message is
    the new one, the user's: only that one is read (and checked), so a client may send its whole
    conversation each time, as OpenAI clients do."""
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        raise GatewayError(400, "With X-DAC-Thread-Id the last message must be the user's new message: the thread keeps "
                                "the conversation, so only that message is added to it.", param="messages")
    return validate_history([last])[0]["content"]


def _thread_id(request: HttpRequest) -> int | None:
    value = request.headers.get("X-DAC-Thread-Id")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise GatewayError(400, "X-DAC-Thread-Id must be a thread id.", param="X-DAC-Thread-Id")
    return int(value)


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _usage(answer: Answer) -> dict:
    prompt, completion = answer.input_tokens or 0, answer.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _answered_model(answer: Answer, handle: SendHandle) -> str:
    return f"{answer.provider or handle.candidate.provider}/{answer.model or handle.candidate.model}"


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return GatewayError(405, "Use POST.", code="method_not_allowed", headers={"Allow": "POST"}).response()
    started = time.perf_counter()
    try:
        token = await _authenticate(request)
        tenant = set_tenant(Tenant(org_id=token.org_id))
        try:
            body = _parse_body(request)
            provider, model = _parse_model(body.get("model"))
            options = _options(body, provider, model)
            thread_id = _thread_id(request)
            caller = Caller(org_id=token.org_id, token=token)
            if thread_id is not None:
                if options.tools is not None and options.tools.choice != "none":
                    raise GatewayError(400, "tools cannot be offered with X-DAC-Thread-Id: a thread keeps text messages only.",
                                       param="tools")
                options = dataclasses.replace(options, tools=None)
                handle = await message_send(caller=caller, thread_id=thread_id, content=_new_message(body["messages"]), options=options)
            else:
                handle = await message_send(caller=caller, history=body["messages"], options=options)
        finally:
            reset_tenant(tenant)
    except GatewayError as exc:
        return exc.response()
    except ApplicationError as exc:
        return _from_application_error(exc).response()
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if options.stream:
        handle.start()  # call the provider now, while the response's head goes out
        response = StreamingHttpResponse(_AnswerEvents(handle, include_usage), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    else:
        try:
            answer, response = await _answer_and_response(handle)
        except asyncio.CancelledError:  # the client went away (the handler cancels the view)
            handle.abandon()
            raise
    for name, value in handle.response_headers().items():
        response[name] = value
    response["X-DAC-Overhead-Ms"] = f"{_overhead_ms(started, None if options.stream else answer):.2f}"
    return response


def _overhead_ms(started: float, answer: Answer | None) -> float:
    """DAC's own time in this call: all of it but the provider's (for a stream, what passed
    before the provider was called, the part a client waits on before its first byte)."""
    elapsed = (time.perf_counter() - started) * 1000
    provider = (answer.latency_ms or 0) if answer is not None else 0
    overhead = max(elapsed - provider, 0.0)
    overhead_observe(overhead)
    return overhead


async def _answer_and_response(handle: SendHandle) -> tuple[Answer, HttpResponse]:
    """A plain call's outcome and its response. The response is built while the answer is being
    recorded (Answered comes before Finished), so it goes out as soon as the record is durable;
    an answer that could not be recorded (Failed) gets its error response instead."""
    prepared = []
    answer = await handle.wait(on_answered=lambda known: prepared.append(_complete(handle, known)))
    if prepared and answer.status == Status.COMPLETE:  # Finished: the record is durable
        return answer, prepared[0]
    return answer, _complete(handle, answer)


def _complete(handle: SendHandle, answer: Answer) -> HttpResponse:
    if answer.status != "complete":
        status, type_ = _FAILURE_STATUS.get(answer.error_category, (502, "upstream_error"))
        # The provider's Retry-After, passed on: clients back off for as long as it asked.
        headers = {"Retry-After": str(math.ceil(answer.retry_after))} if answer.retry_after else None
        return GatewayError(status, answer.error_message, type_=type_, code=answer.error_category, headers=headers).response()
    body = {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _answered_model(answer, handle),
        "choices": [
            {
                "index": 0,
                "message": _message(answer),
                "logprobs": None,
                "finish_reason": _FINISH.get(answer.finish_reason, "stop"),
            }
        ],
        "usage": _usage(answer),
    }
    if answer.citations:
        body["citations"] = answer.citations
    return JsonResponse(body)


def _message(answer: Answer) -> dict:
    message = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tool_calls:
        message["content"] = answer.text or None  # as OpenAI answers a turn that only calls functions
        message["tool_calls"] = [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                                 for call in answer.tool_calls]
    return message


def _tool_call_delta(part: ToolCallPart) -> dict:
    """A piece of a tool call in a chunk's delta: the id, type and name come with its first piece."""
    delta: dict = {"index": part.index}
    if part.id:
        delta.update(id=part.id, type="function")
    delta["function"] = {"name": part.name, "arguments": part.arguments} if part.name else {"arguments": part.arguments}
    return delta


class _AnswerEvents:
    """A streamed answer's response body. Its reader can go away three ways: the handler cancels
    the sending (the events below see it), or a send fails, or the response is dropped, leaving
    them suspended; Django closes the body with the response in the last two. Either way an
    answer still running has lost its reader (`SendHandle.abandon`, a no-op after its end)."""

    def __init__(self, handle: SendHandle, include_usage: bool) -> None:
        self.handle, self.include_usage = handle, include_usage

    def __aiter__(self):
        return _stream(self.handle, self.include_usage)

    def close(self) -> None:
        self.handle.abandon()


async def _stream(handle: SendHandle, include_usage: bool):
    completion_id, created = _completion_id(), int(time.time())
    model = f"{handle.candidate.provider}/{handle.candidate.model}"

    def chunk(delta: dict, finish_reason=None, **extra) -> bytes:
        payload = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra,
        }
        return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    # As OpenAI opens a turn that may only call functions: its content null until text comes.
    offers_tools = handle.options.tools is not None and handle.options.tools.choice != "none"
    try:
        yield chunk({"role": "assistant", "content": None if offers_tools else ""})
        # What arrived together goes out in one write (a fast provider sends many pieces in one
        # packet): one send, one system call, instead of one per piece.
        async for batch in handle.event_batches():
            end = batch[-1]
            if isinstance(end, Finished):
                answer = end.answer
                model = _answered_model(answer, handle)
                extra = {"citations": answer.citations} if answer.citations else {}
                parts = [chunk({}, _FINISH.get(answer.finish_reason, "stop"), **extra)]
                if include_usage:
                    usage = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": _usage(answer)}
                    parts.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
                parts.append(b"data: [DONE]\n\n")
            elif isinstance(end, Failed):
                answer = end.answer
                _, type_ = _FAILURE_STATUS.get(answer.error_category, (502, "upstream_error"))
                error = openai_error_body(answer.error_message, type_=type_, code=answer.error_category)
                parts = [b"data: " + json.dumps(error).encode() + b"\n\n", b"data: [DONE]\n\n"]
            else:
                model = f"{handle.candidate.provider}/{handle.candidate.model}"  # after a fallback: the one answering
                parts = [chunk({"tool_calls": [_tool_call_delta(event.part)]}) if isinstance(event, ToolCallDelta)
                         else chunk({"content": event.text}) for event in batch]
            yield b"".join(parts)
    finally:  # a cancelled sending (the client went away) ends here too
        handle.abandon()


async def models(request: HttpRequest) -> HttpResponse:
    """GET /v1/models: what `model` may name for this token's org."""
    token, refused = await _token_of_get(request)
    if refused is not None:
        return refused
    ids = await db_step(_model_ids, token.org_id)
    created = int(time.time())
    return JsonResponse({"object": "list", "data": [_model_object(model_id, created) for model_id in ids]})


async def model(request: HttpRequest, model_id: str) -> HttpResponse:
    """GET /v1/models/{id} (the SDK's `models.retrieve`): one entry of the list, or a 404."""
    token, refused = await _token_of_get(request)
    if refused is not None:
        return refused
    if model_id not in await db_step(_model_ids, token.org_id):
        return GatewayError(404, f"The model {model_id!r} is not available to this organization: GET /v1/models lists those that are.",
                            code="model_not_found", param="model").response()
    return JsonResponse(_model_object(model_id, int(time.time())))


async def _token_of_get(request: HttpRequest):
    """(the API token, None), or (None, the response refusing the request: 405 or 401)."""
    if request.method != "GET":
        return None, GatewayError(405, "Use GET.", code="method_not_allowed", headers={"Allow": "GET"}).response()
    try:
        return await _authenticate(request), None
    except GatewayError as exc:
        return None, exc.response()


def _model_object(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": model_id.split("/")[0] if "/" in model_id else "dac"}


def _model_ids(org_id: int) -> list[str]:
    from providers.services.keys import active_keys
    from routing import rules
    from routing.services import org_routing
    from tenants.context import tenant_context

    with tenant_context(org_id):
        keys = active_keys()
        routing = org_routing()
    ids = ["auto"]
    for provider, key in keys.items():
        names = {key.default_model} if key.default_model else set()
        for rule, rule_provider in rules.RULE_PROVIDERS.items():
            if rule_provider == provider:
                names.add(routing.models.get(rule) or rules.DEFAULT_MODELS[rule])
        if ADAPTERS[provider].default_model:
            names.add(ADAPTERS[provider].default_model)
        ids += sorted(f"{provider}/{name}" for name in names if name)
    ids.append("demo/demo-1")  # offline, always there: what `model: "auto"` answers with while no key is
    return ids
