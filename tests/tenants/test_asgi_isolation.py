"""Under ASGI, with pooled connections reused across requests and threads, each request sees
only its own org, a streamed body keeps its org after the middleware returned, and a request
with no org sees nothing."""

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from dac.asgi import django_application
from tests.factories import api_token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _token(org) -> str:
    return api_token_for(org, "t")


def _raw_membership_count_with_no_org() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenants_membership")
        return cursor.fetchone()[0]


async def _client():
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=django_application), base_url="http://127.0.0.1")


def _emails(response) -> set[str]:
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    return {row["email"] for row in rows}


async def test_interleaved_requests_of_two_orgs_never_see_each_other(org_a, org_b, alice, bob, charlie):
    token_a, token_b = await sync_to_async(_token)(org_a), await sync_to_async(_token)(org_b)
    async with await _client() as client:

        async def get(token):
            return token, await client.get("/api/v1/members/", headers={"Authorization": f"Bearer {token}"})

        results = await asyncio.gather(*(get(token_a if i % 2 else token_b) for i in range(60)))
    for token, response in results:
        assert response.status_code == 200
        expected = {"alice@example.com", "bob@example.com"} if token == token_a else {"charlie@example.com"}
        assert _emails(response) == expected
    assert await sync_to_async(_raw_membership_count_with_no_org)() == 0


@pytest.mark.urls("tests.tenants.stream_urls")
async def test_streamed_body_runs_in_its_requests_org(org_a, org_b, alice, bob, charlie):
    from django.test import Client

    sync_client = Client()
    await sync_to_async(sync_client.force_login)(alice)
    cookies = {"sessionid": sync_client.cookies["sessionid"].value}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=django_application), base_url="http://127.0.0.1", cookies=cookies
    ) as client:
        responses = await asyncio.gather(*(client.get("/stream-members/") for _ in range(10)))
    for response in responses:
        assert response.text == "start\nalice@example.com,bob@example.com"
    assert await sync_to_async(_raw_membership_count_with_no_org)() == 0
