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
