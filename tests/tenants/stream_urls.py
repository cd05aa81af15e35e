"""A test-only URLconf: a streamed body that queries the database after the view returned."""

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.urls import include, path

from tenants.models import Membership


def _emails() -> str:
    return ",".join(sorted(Membership.objects.values_list("user__email", flat=True)))


def streamed_members(request):
    async def body():
        yield b"start\n"
        yield (await sync_to_async(_emails)()).encode()

    return StreamingHttpResponse(body(), content_type="text/plain")


urlpatterns = [
    path("stream-members/", streamed_members),
    path("", include("dac.urls")),
]
