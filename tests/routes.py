"""Every URL pattern of the project, for the suites that must cover all of them."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver


def url_routes() -> list[tuple[str, object]]:
    """(route as Django prints it, view) for every URL pattern, admin included."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                found.append((route, pattern.callback))

    walk(get_resolver().url_patterns, "")
    return found
