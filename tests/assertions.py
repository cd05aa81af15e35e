"""Assertions shared by the API test modules."""

import time


def assert_error_shape(response, status: int, code: str | None = None) -> None:
    """DAC's one error shape: {"error": {"code", "message", "detail"}}, with the given status."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "detail"} <= set(body["error"])
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def settled_answer(org, thread, timeout: float = 10.0):
    """The thread's assistant message once it is no longer streaming (or as it is at `timeout`)."""
    from tenants.context import tenant_context
    from threads.models import Message

    deadline = time.monotonic() + timeout
    while True:
        with tenant_context(org):
            answer = Message.objects.get(thread=thread, role="assistant")
        if answer.status != "streaming" or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def tokens_counted(org, provider: str, timeout: float = 10.0) -> int:
    """The tokens counted today for the org's provider, once no answer is running in this process
    (the live server's): an answer settles its quota last, beside its audit write."""
    from providers.services.quota import quota_usage
    from threads.services.handle import _RUNNING

    deadline = time.monotonic() + timeout
    while any(not task.done() for task in list(_RUNNING)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return quota_usage(org_id=org.id, provider=provider).tokens_used


def counted_without_usage(messages, text: str) -> int:
    """What a call whose provider reported no usage counts: its prompt and the text that arrived."""
    from providers.services.quota import estimate_answer_tokens, estimate_prompt_tokens

    return estimate_prompt_tokens(messages) + estimate_answer_tokens(text)
