"""Assertions shared by the API test modules."""


def assert_error_shape(response, status: int, code: str | None = None) -> None:
    """DAC's one error shape: {"error": {"code", "message", "detail"}}, with the given status."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "detail"} <= set(body["error"])
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
