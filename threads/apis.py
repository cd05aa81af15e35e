from __future__ import annotations

import json

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dac.errors import NotFound
from providers.adapters import REASONING_EFFORTS
from tenants.models import User
from tenants.permissions import IsOrgMember
from threads import selectors
from threads.gateway import GatewayError, answer_shape
from threads.services import Caller, SendOptions, message_send, thread_create, thread_update
from threads.services.handle import Failed, Finished, SendHandle
from threads.services.threads import stale_answers_sweep

MAX_PAGE = 200


@extend_schema_serializer(component_name="Thread")
class ThreadOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    last_provider = serializers.CharField()
    last_model = serializers.CharField()
    archived = serializers.BooleanField()
    memory_enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="Message")
class MessageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    thread_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.CharField()
    status = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    citations = serializers.ListField(child=serializers.CharField())
    routing = serializers.DictField()
    error_category = serializers.CharField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()


def _thread(thread_id: int):
    try:
        return selectors.thread_get(thread_id=thread_id)
    except NotFound:
        raise Http404 from None


def _caller(request) -> Caller:
    raw = request._request
    user = request.user if isinstance(request.user, User) else None
    return Caller(org_id=raw.org_access.org_id, user=user, token=getattr(raw, "api_token", None))


class ThreadListApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="ThreadCreate")
    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="Search titles"), OpenApiParameter("archived", bool)],
        responses=ThreadOutputSerializer(many=True),
    )
    def get(self, request):
        threads = selectors.thread_list(search=request.query_params.get("q", ""), archived=request.query_params.get("archived") in ("1", "true"))
        page = self.paginator.paginate_queryset(threads, request, view=self)
        return self.paginator.get_paginated_response(ThreadOutputSerializer(page, many=True).data)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            from rest_framework.pagination import PageNumberPagination

            self._paginator = PageNumberPagination()
        return self._paginator

    @extend_schema(request=InputSerializer, responses={201: ThreadOutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        caller = _caller(request)
        thread = thread_create(org_id=caller.org_id, created_by=caller.user, title=data.validated_data["title"])
        return Response(ThreadOutputSerializer(thread).data, status=status.HTTP_201_CREATED)


class ThreadDetailApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="ThreadUpdate")
    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(required=False, max_length=200)
        archived = serializers.BooleanField(required=False)
        memory_enabled = serializers.BooleanField(required=False)

    @extend_schema(responses=ThreadOutputSerializer)
    def get(self, request, thread_id: int):
        return Response(ThreadOutputSerializer(_thread(thread_id)).data)

    @extend_schema(request=InputSerializer, responses=ThreadOutputSerializer)
    def patch(self, request, thread_id: int):
        thread = _thread(thread_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        thread_update(thread=thread, **data.validated_data)
        return Response(ThreadOutputSerializer(thread).data)


class ThreadArchiveApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema(request=None, responses=ThreadOutputSerializer)
    def post(self, request, thread_id: int):
        thread = thread_update(thread=_thread(thread_id), archived=True)
        return Response(ThreadOutputSerializer(thread).data)


class MessageListApi(APIView):
    """List a thread's messages (newest page first by `before`), or send one."""

    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="MessageCreate")
    class InputSerializer(serializers.Serializer):
        content = serializers.CharField(trim_whitespace=False, allow_blank=True)
        provider = serializers.CharField(required=False, allow_null=True, help_text="Pin a provider for this message (overrides the rules).")
        model = serializers.CharField(required=False, allow_null=True, max_length=200)
        max_tokens = serializers.IntegerField(required=False, allow_null=True)
        temperature = serializers.FloatField(required=False, allow_null=True)
        stream = serializers.BooleanField(default=False, help_text="Answer as Server-Sent Events (delta, done, failed).")
        # As in OpenAI's chat completions, and checked as the gateway checks them (threads/gateway.py, answer_shape).
        stop = serializers.JSONField(required=False, allow_null=True,
                                     help_text="A string, or up to 4 strings: the answer ends before the first of them.")
        response_format = serializers.JSONField(
            required=False, allow_null=True,
            help_text='{"type": "json_object"} or {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}: '
                      "the answer is JSON (of that schema). The message keeps it as text.")
        top_p = serializers.FloatField(required=False, allow_null=True, help_text="From 0 to 1.")
        seed = serializers.IntegerField(required=False, allow_null=True)
        presence_penalty = serializers.FloatField(required=False, allow_null=True, help_text="From -2 to 2.")
        frequency_penalty = serializers.FloatField(required=False, allow_null=True, help_text="From -2 to 2.")
        reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False, allow_null=True,
                                                   help_text="How long a reasoning model thinks, in each provider's terms.")
        logit_bias = serializers.JSONField(required=False, allow_null=True,
                                           help_text='Token ids (as strings) to numbers from -100 to 100, e.g. {"50256": -100}.')

    @extend_schema_serializer(component_name="MessagePage")
    class PageSerializer(serializers.Serializer):
        results = MessageOutputSerializer(many=True)
        next_before = serializers.IntegerField(allow_null=True, help_text="Pass as ?before= for the previous page.")

    @extend_schema(
        parameters=[OpenApiParameter("before", int, description="Only messages with seq below this"), OpenApiParameter("limit", int)],
        responses=PageSerializer,
    )
    def get(self, request, thread_id: int):
        thread = _thread(thread_id)
        try:
            before = int(request.query_params["before"]) if "before" in request.query_params else None
            limit = min(max(int(request.query_params.get("limit", 50)), 1), MAX_PAGE)
        except ValueError:
            raise serializers.ValidationError({"before": "before and limit must be whole numbers."}) from None
        stale_answers_sweep(thread=thread)
        page = selectors.message_list(thread=thread, before_seq=before, limit=limit)
        next_before = page[0].seq if page and page[0].seq > 1 else None
        return Response({"results": MessageOutputSerializer(page, many=True).data, "next_before": next_before})

    @extend_schema(request=InputSerializer, responses={201: MessageOutputSerializer})
    def post(self, request, thread_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if request.data.get("tools"):
            raise serializers.ValidationError({"tools": ["tools cannot be offered in a thread: a thread keeps text messages only."]})
        try:  # the values as sent: "0.5" is no more a number here than at the gateway
            shape = answer_shape({name: request.data.get(name) for name in _ANSWER_FIELDS})
        except GatewayError as exc:
            raise serializers.ValidationError({exc.param: [exc.message]}) from None
        options = SendOptions(
            provider=values.get("provider") or None,
            model=values.get("model") or None,
            max_tokens=values.get("max_tokens"),
            temperature=values.get("temperature"),
            stream=values["stream"],
            **shape,
        )
        handle = async_to_sync(_message_send_started)(caller=_caller(request), thread_id=thread_id, content=values["content"], options=options)
        if options.stream:
            response = StreamingHttpResponse(_api_events(handle), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            for name, value in handle.response_headers().items():
                response[name] = value
            return response
        connection.close()  # nothing held while the provider answers
        answer = async_to_sync(handle.wait)()
        message = handle.message_from(answer)
        headers = handle.response_headers(handle.usage_headers_now())
        code = status.HTTP_201_CREATED if answer.status == "complete" else status.HTTP_502_BAD_GATEWAY
        body = MessageOutputSerializer(message).data
        if code != status.HTTP_201_CREATED:
            body = {"error": {"code": answer.error_category, "message": answer.error_message, "detail": {"message": body}}}
        return Response(body, status=code, headers=headers)


_ANSWER_FIELDS = ("stop", "response_format", "top_p", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort", "logit_bias")


async def _message_send_started(**arguments) -> SendHandle:
    """`message_send`, and a streamed answer started at once on the server's loop: a client that
    leaves before the response's body is read still gets its answer saved in the thread."""
    handle = await message_send(**arguments)
    if handle.options.stream:
        handle.start_if_served()
    return handle


async def _api_events(handle):
    def sse(event: str, data) -> bytes:
        return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    yield sse("start", {"user_message_id": handle.user_message_id, "message_id": handle.assistant_message_id, "routing": handle.plan.to_dict(chosen=handle.candidate)})
    async for batch in handle.event_batches():  # what arrived together, in one write
        end = batch[-1]
        if isinstance(end, (Finished, Failed)):
            message = await sync_to_async(lambda: MessageOutputSerializer(handle.message_from(end.answer)).data)()
            yield sse("done" if isinstance(end, Finished) else "failed", {"message": message})
        else:
            yield b"".join(sse("delta", {"text": event.text}) for event in batch)
