from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from dac.errors import ApplicationError, NotFound, error_body
from providers.selectors import PROVIDER_LABELS
from providers.services.keys import active_keys
from tenants.decorators import org_member_required
from threads import selectors
from threads.models import Message
from threads.services import Caller, SendOptions, message_send, thread_create, thread_update
from threads.services.threads import stale_answers_sweep
from threads.services.answer import message_stop
from threads.services.handle import Failed, Finished

PAGE_SIZE = 50


def _thread_or_404(thread_id: int):
    try:
        return selectors.thread_get(thread_id=thread_id)
    except NotFound:
        raise Http404("No such thread.") from None


@org_member_required
@vary_on_headers("HX-Request")
def thread_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")[:100]
    archived = request.GET.get("archived") == "1"
    context = {"threads": selectors.thread_list(search=search, archived=archived)[:200], "q": search, "archived": archived}
    if request.htmx:
        return render(request, "threads/thread_list.html#thread-rows", context)
    return render(request, "threads/thread_list.html", context)


@require_POST
@org_member_required
def thread_new(request: HttpRequest) -> HttpResponse:
    try:
        thread = thread_create(org_id=request.org_access.org_id, created_by=request.user, title=request.POST.get("title", ""))
    except ApplicationError as exc:
        flash.error(request, exc.message)
        return redirect("threads:list")
    return redirect("threads:detail", thread_id=thread.pk)


def _provider_choices() -> list[tuple[str, str]]:
    keys = active_keys()
    choices = [(name, PROVIDER_LABELS.get(name, name)) for name in keys]
    return choices or [("demo", PROVIDER_LABELS["demo"])]


@org_member_required
@vary_on_headers("HX-Request")
def thread_detail(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread_or_404(thread_id)
    stale_answers_sweep(thread=thread)
    before = request.GET.get("before")
    page = selectors.message_list(thread=thread, before_seq=int(before) if before and before.isdigit() else None, limit=PAGE_SIZE)
    context = {
        "thread": thread,
        "chat_messages": page,
        "has_older": bool(page) and page[0].seq > 1,
        "oldest_seq": page[0].seq if page else None,
        "provider_choices": _provider_choices(),
    }
    if request.htmx and before:
        return render(request, "threads/thread_detail.html#older-messages", context)
    return render(request, "threads/thread_detail.html", context)


@require_POST
@org_member_required
@vary_on_headers("HX-Request")
def thread_rename(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread_or_404(thread_id)
    title = request.POST.get("title", "")
    try:
        thread_update(thread=thread, title=title)
    except ApplicationError as exc:
        if request.htmx:  # said in the open Rename form now, not queued for the next page
            context = {"thread": thread, "rename_error": exc.message, "rename_title": title}
            return render(request, "threads/thread_detail.html#thread-heading", context)
        flash.error(request, exc.message)
    if request.htmx:
        return render(request, "threads/thread_detail.html#thread-heading", {"thread": thread})
    return redirect("threads:detail", thread_id=thread.pk)


@require_POST
@org_member_required
def thread_archive(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread_or_404(thread_id)
    archive = request.POST.get("archived", "1") == "1"
    thread_update(thread=thread, archived=archive)
    flash.success(request, f"“{thread}” {'archived' if archive else 'restored'}.")
    return redirect("threads:list")


def _sse(event: str, data) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _message_html(handle, answer=None) -> str:
    """The message as the chat page shows it; an answer is rendered from memory if the
    database cannot be read right now."""
    if answer is None:
        message = Message.objects.get(pk=handle.user_message_id)
    else:
        message = handle.message_from(answer)
    return render_to_string("threads/_message.html", {"m": message})


async def message_send_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    """POST a message. With `Accept: text/event-stream` the answer streams as SSE (the chat
    page); otherwise the page waits for the answer and redirects (works without JavaScript)."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    user = await request.auser()
    wants_stream = "text/event-stream" in request.headers.get("Accept", "")
    if not user.is_authenticated or request.org_access is None:
        if wants_stream:
            return JsonResponse(error_body("not_authenticated", "Log in to send messages."), status=401)
        return redirect(f"{reverse('tenants:login')}?next={request.path}")
    caller = Caller(org_id=request.org_access.org_id, user=user)
    provider = request.POST.get("provider") or None
    options = SendOptions(provider=None if provider == "auto" else provider, stream=True)
    try:
        # A form sends a textarea's line breaks as CRLF: one character each, as the user typed them
        # and as the limit counts them.
        content = request.POST.get("content", "").replace("\r\n", "\n")
        handle = await message_send(caller=caller, thread_id=thread_id, content=content, options=options)
    except ApplicationError as exc:
        if wants_stream:
            response = JsonResponse(error_body(exc.code, exc.message, exc.detail), status=exc.status)
            for name, value in exc.headers.items():
                response[name] = value
            return response
        if exc.status == 404:
            raise Http404(exc.message) from None
        await sync_to_async(flash.error)(request, exc.message)
        return redirect("threads:detail", thread_id=thread_id)
    if not wants_stream:
        answer = await handle.wait()
        if answer.error_message:
            await sync_to_async(flash.error)(request, answer.error_message)
        return redirect("threads:detail", thread_id=thread_id)

    handle.start_if_served()  # the answer goes on if the page leaves before its body is read

    async def events():
        user_html = await sync_to_async(_message_html)(handle)
        yield _sse("start", {"user_html": user_html, "assistant_id": handle.assistant_message_id, "decision": handle.plan.to_dict(chosen=handle.candidate)})
        async for batch in handle.event_batches():  # what arrived together, in one write
            end = batch[-1]
            if isinstance(end, (Finished, Failed)):
                html = await sync_to_async(_message_html)(handle, end.answer)
                name = "done" if isinstance(end, Finished) else "failed"
                yield _sse(name, {"html": html, "error": end.answer.error_message, "category": end.answer.error_category})
            else:
                yield b"".join(_sse("delta", {"text": event.text}) for event in batch)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in handle.response_headers().items():
        response[name] = value
    return response


@require_GET
@org_member_required
def message_detail(request: HttpRequest, thread_id: int, message_id: int) -> HttpResponse:
    thread = _thread_or_404(thread_id)
    message = Message.objects.filter(thread=thread, pk=message_id).first()
    if message is None:
        raise Http404("No such message.")
    return render(request, "threads/_message.html", {"m": message})


@require_POST
@org_member_required
def message_stop_view(request: HttpRequest, thread_id: int, message_id: int) -> HttpResponse:
    """Stop a running answer: what arrived so far is kept as the answer."""
    try:
        message_stop(thread_id=thread_id, message_id=message_id)
    except NotFound:
        raise Http404("No such message.") from None
    return HttpResponse(status=204)
