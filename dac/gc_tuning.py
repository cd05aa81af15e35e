"""The garbage collector of a server process: what it scans and how often (issue 10).

Measured with gc callbacks on one uvicorn worker at concurrency 64: with CPython's defaults the
collector took ~1.2 s of a 9 s run (~15 % of the worker's CPU), its full collections walking
the ~220,000 objects of Django, the URLconf and the libraries, none of which ever becomes
garbage. `gc.freeze()` moves everything alive after start-up into the permanent generation, so
collections only look at what requests create; a larger first-generation threshold lets most
of that die by reference counting before a collection looks at it. Freezing took plain calls/s
at concurrency 64 up 25-45 %; the threshold then cut GC time to about a third of the original
(docs/performance.md, round 3), for ~10 MB more resident.
"""

from __future__ import annotations

import gc

# Allocations (minus deallocations) between young-generation collections; CPython's default
# is 700. The older generations keep their ratios (20 young collections per middle one, …).
YOUNG_THRESHOLD = 20_000


def prepare_for_serving() -> None:
    """Load what the first requests would load lazily, then freeze the heap as it is."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # imports every view and all they import
    import providers.adapters.client  # noqa: F401 - the provider HTTP client
    import providers.services.quota  # noqa: F401 - redis.asyncio among others

    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)
