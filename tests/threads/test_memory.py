"""Org memory (issue 7): indexing, recall across threads, org isolation on one shared
collection, top-k / min score, switches per org and per thread, provenance in the audit log,
Qdrant down (chat goes on, backlog grows, `reindex_memory` drains it), forgetting, the
background indexer. Qdrant is real: the in-memory local store (settings_test sets
QDRANT_PATH=""), or a closed port where Qdrant must be unreachable."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from qdrant_client import models

from audit.models import AuditLog
from audit.services import Actor
from dac.errors import NotFound
from tenants.context import tenant_context
from tests.factories import api_token_for, fake_provider_keyed
from threads import memory
from threads.memory import embeddings, selectors, store, worker
from threads.memory.services import memory_settings_update
from threads.memory.text import document_vector, query_vector, tokenize
from threads.models import ForgottenMemory, MemoryBacklog, Message, Status, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]


@pytest.fixture(autouse=True)
def fresh_memory(settings):
    """A new in-memory Qdrant per test, indexing inline (the default is a background thread)."""
    settings.QDRANT_URL = ""
    settings.QDRANT_PATH = ""
    settings.DAC_MEMORY_INDEX_MODE = "inline"
    settings.DAC_MEMORY_RECALL_BUDGET_MS = 10_000  # same code path, tolerant of a loaded CI box
    worker.wait_idle(5)
    store.reset()
    embeddings.reset()
    selectors.reset_warnings()
    yield
    worker.wait_idle(5)
    selectors.wait_recalls(10)
    store.reset()


def make_thread(org, title: str, *texts: str, index: bool = True, status: str = Status.COMPLETE) -> tuple[Thread, list[Message]]:
    """A thread whose messages alternate user / assistant, indexed the way the pipeline does it."""
    with tenant_context(org):
        thread = Thread.objects.create(org=org, title=title)
        messages = [
            Message.objects.create(org=org, thread=thread, seq=i + 1, role="user" if i % 2 == 0 else "assistant", content=text, status=status)
            for i, text in enumerate(texts)
        ]
        Thread.objects.filter(pk=thread.pk).update(next_seq=len(texts) + 1)
    if index:
        memory.index_messages(org_id=org.pk, message_ids=[m.pk for m in messages])
    return thread, messages


NOISE = (
    "lunch menu for friday", "quarterly sales numbers", "the printer on floor two is jammed",
    "holiday rota for december", "new laptop requests go through it", "parking spaces are reassigned",
)


def noise(org) -> None:
    """Unrelated chatter, so that term rarity (IDF) behaves as in an org with some history."""
    make_thread(org, "Noise", *NOISE)


def points(**match) -> list[models.Record]:
    """Every point in the shared collection (optionally matching payload values): no org filter."""
    flt = models.Filter(must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in match.items()]) if match else None
    found, _ = store.get_store().client.scroll(store.collection_name(), scroll_filter=flt, limit=10_000, with_payload=True)
    return found


def recall(org, thread, text):
    with tenant_context(org):
        return memory.recall_for(org_id=org.pk, thread=Thread.objects.get(pk=thread.pk), text=text)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- text ---


def test_tokens_are_lowercased_stemmed_and_free_of_stopwords():
    assert tokenize("The Bakeries were INDEXED and we're indexing the bakery") == ["bakery", "index", "index", "bakery"]
    assert tokenize("東京の天気") == ["東京", "京の", "の天", "天気"]  # CJK has no spaces: bigrams
    assert tokenize("the a of 7 x") == []


def test_sparse_vectors_hash_stably_per_org_and_saturate_repeats():
    once, many = document_vector("pelican", org_id=1), document_vector("pelican " * 50, org_id=1)
    assert once.indices == many.indices == query_vector("Pelicans!", org_id=1).indices
    assert query_vector("pelican", org_id=2).indices != once.indices  # another org, another index
    assert 1.0 < once.values[0] < many.values[0] < 2.2  # BM25 saturation: 50 repeats count less than k1 + 1
    assert query_vector("pelican pelican", org_id=1).values == [1.0]


# --- indexing ---


def test_complete_messages_are_indexed_with_their_payload_and_nothing_else(org_a):
    thread, messages = make_thread(org_a, "Launch", "When does the pelican launch happen?", "The pelican launch is on March 3rd.")
    make_thread(org_a, "Broken", "a failed answer about pelicans", status=Status.FAILED)
    make_thread(org_a, "Empty", "   ")
    stored = {p.id: p.payload for p in points()}
    assert set(stored) == {m.pk for m in messages}
    first = stored[messages[0].pk]
    assert first == {
        "org_id": org_a.pk, "thread_id": thread.pk, "message_id": messages[0].pk, "role": "user",
        "created_at": messages[0].created_at.isoformat(),
    }
    assert "content" not in first and "text" not in first  # the text stays in PostgreSQL, under RLS
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()


def test_the_collection_is_created_lazily_with_an_idf_sparse_vector():
    client = store.get_store().client
    assert not client.collection_exists(store.collection_name())
    store.get_store().call(lambda c: None)
    params = client.get_collection(store.collection_name()).config.params
    assert params.sparse_vectors[store.LEXICAL].modifier == models.Modifier.IDF
    assert params.vectors[store.DENSE].size == store.dense_size()


# --- recall ---


def test_recall_brings_the_best_memories_of_other_threads_not_this_one(org_a):
    bakery, (question, answer) = make_thread(org_a, "Bakery names", "Name ideas for our sourdough bakery?", "Call the sourdough bakery Crumb & Co.")
    make_thread(org_a, "Holidays", "Plan a trip to Lisbon in May", "Lisbon in May is warm; book early.")
    current, _ = make_thread(org_a, "Today", "what did we call the sourdough bakery?")
    recalled = recall(org_a, current, "what did we call the sourdough bakery?")
    assert {r.message_id for r in recalled} == {question.pk, answer.pk}
    assert all(r.thread_id == bakery.pk for r in recalled)
    assert recalled[0].score >= recalled[-1].score > 0
    assert "Crumb & Co" in " ".join(r.text for r in recalled) and "Bakery names" in recalled[0].text
    # Inside the bakery thread, its own messages never come back: the other thread's do.
    assert [r.thread_id for r in recall(org_a, bakery, "sourdough bakery name")] == [current.pk]


def test_top_k_and_min_score_limit_what_is_recalled(org_a, settings):
    make_thread(org_a, "Strong", "kubernetes ingress certificate renewal failed with kubernetes ingress errors")
    make_thread(org_a, "Medium", "the ingress certificate expired yesterday")
    make_thread(org_a, "Weak", "a certificate of attendance for the workshop")
    make_thread(org_a, "Noise 1", "lunch menu for friday")
    make_thread(org_a, "Noise 2", "quarterly sales numbers")
    current, _ = make_thread(org_a, "Now", index=False)
    query = "kubernetes ingress certificate renewal"
    settings.DAC_MEMORY_MIN_SCORE = 0.0
    everything = recall(org_a, current, query)
    assert [r.text.split("“")[1].split("”")[0] for r in everything] == ["Strong", "Medium", "Weak"]  # top_k 3 by default
    settings.DAC_MEMORY_TOP_K = 1
    assert [r.message_id for r in recall(org_a, current, query)] == [everything[0].message_id]
    settings.DAC_MEMORY_TOP_K = 5
    threshold = (everything[1].score + everything[2].score) / 2
    settings.DAC_MEMORY_MIN_SCORE = threshold
    assert [r.message_id for r in recall(org_a, current, query)] == [r.message_id for r in everything[:2]]
    # The org's own settings win over the defaults.
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), top_k=1, min_score=0.0)
    assert len(recall(org_a, current, query)) == 1


def test_one_org_never_recalls_or_finds_another_orgs_memories_in_the_shared_collection(org_a, org_b):
    noise(org_a)
    noise(org_b)
    _, secret = make_thread(org_a, "Secret", "Project pelican launches on the ninth of March", "Pelican budget is four million")
    _, own = make_thread(org_b, "Birds", "pelican facts: pelicans eat fish")
    assert {p.payload["org_id"] for p in points(message_id=secret[0].pk)} == {org_a.pk}
    assert {p.payload["org_id"] for p in points()} == {org_a.pk, org_b.pk}  # one collection, both orgs
    current_b, _ = make_thread(org_b, "Now", index=False)
    recalled = recall(org_b, current_b, "pelican launch budget March")
    assert [r.message_id for r in recalled] == [own[0].pk]
    with tenant_context(org_b):
        found = memory.memory_search(org_id=org_b.pk, query="pelican launch budget")
    assert [r.message_id for r in found.results] == [own[0].pk]
    assert not {m.pk for m in secret} & {r.message_id for r in found.results}


@pytest.mark.parametrize("scope", ["org", "global"])
def test_an_orgs_scores_do_not_depend_on_what_other_orgs_write(org_a, org_b, settings, scope):
    """IDF is per org: by corpus scoping on a server ("org"), by org-keyed hashing in local mode."""
    settings.DAC_MEMORY_IDF_SCOPE = scope
    noise(org_b)
    make_thread(org_b, "Birds", "pelicans eat fish")
    current_b, _ = make_thread(org_b, "Now", index=False)
    before = recall(org_b, current_b, "pelican fish")[0].score
    make_thread(org_a, "Flood", *[f"pelican fish report number {n}" for n in range(30)])
    after = recall(org_b, current_b, "pelican fish")[0].score
    if scope == "org":
        assert after == pytest.approx(before)
    else:  # only the collection's size is shared: scores move a little, never toward A's words
        assert after >= before


def test_a_point_pretending_to_be_another_orgs_never_surfaces_its_text(org_a, org_b):
    """Even a point written with the wrong org (a bug, a tampered store) is re-read under RLS."""
    _, (secret,) = make_thread(org_a, "Secret", "zeppelin maintenance schedule")
    sparse = document_vector("zeppelin maintenance schedule", org_id=org_b.pk)  # as if org B had written it
    store.get_store().client.upsert(store.collection_name(), points=[models.PointStruct(
        id=secret.pk + 10_000_000, vector={store.LEXICAL: models.SparseVector(indices=sparse.indices, values=sparse.values)},
        payload={"org_id": org_b.pk, "thread_id": secret.thread_id, "message_id": secret.pk, "role": "user", "created_at": ""},
    )])
    current_b, _ = make_thread(org_b, "Now", index=False)
    assert recall(org_b, current_b, "zeppelin maintenance") == []
    with tenant_context(org_b):
        assert memory.memory_search(org_id=org_b.pk, query="zeppelin").results == []


def test_memory_off_for_the_org_recalls_and_indexes_nothing_until_it_is_back_on(org_a):
    make_thread(org_a, "Old", "the wifi password is hunter2 hunter2")
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), enabled=False)
    current, _ = make_thread(org_a, "Now", "meanwhile: the printer is on floor three")
    assert recall(org_a, current, "wifi password") == []
    assert len(points()) == 1  # the new message was not indexed
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), enabled=True)
    assert len(points()) == 2  # what was said while off is queued (and indexed) when it is back on
    other, _ = make_thread(org_a, "Later", index=False)
    assert len(recall(org_a, other, "printer floor")) == 1
    with tenant_context(org_a):
        assert AuditLog.objects.filter(event="memory.settings").count() == 2


def test_a_thread_with_memory_off_recalls_nothing_but_is_still_remembered(org_a):
    noise(org_a)
    _, (old,) = make_thread(org_a, "Old", "quarterly okr draft for the platform team")
    private, (said,) = make_thread(org_a, "Private", "platform team okr notes")
    with tenant_context(org_a):
        Thread.objects.filter(pk=private.pk).update(memory_enabled=False)
    assert recall(org_a, private, "platform team okr") == []
    other, _ = make_thread(org_a, "Other", index=False)
    assert {r.message_id for r in recall(org_a, other, "platform team okr")} == {old.pk, said.pk}


# --- through the send pipeline ---


@pytest.fixture
def openai_fake(org_a, settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    with fake_provider_keyed(org_a) as fake:
        yield fake


@pytest.fixture
def api(org_a):
    token = api_token_for(org_a, "memory tests")
    return Client(headers={"Authorization": f"Bearer {token}"})


def send(api, thread, content):
    return api.post(f"/api/v1/threads/{thread.pk}/messages/", {"content": content, "provider": "openai"}, content_type="application/json")


def test_an_answer_uses_memories_of_other_threads_and_the_audit_log_says_which(api, org_a, openai_fake):
    first, _ = make_thread(org_a, "Bakery", index=False)
    response = send(api, first, "Our sourdough bakery will be called Crumb and Co")
    assert response.status_code == 201, response.content
    with tenant_context(org_a):
        said = Message.objects.get(thread=first, role="user")
        assert set(Message.objects.filter(thread=first).values_list("pk", flat=True)) == {p.id for p in points()}
    second, _ = make_thread(org_a, "Signage", index=False)
    response = send(api, second, "What name did we pick for the sourdough bakery?")
    assert response.status_code == 201, response.content
    recalled = response.json()["routing"]["recalled"]
    assert said.pk in [r["message_id"] for r in recalled] and {r["thread_id"] for r in recalled} == {first.pk}
    system = openai_fake.requests[-1].json["messages"][0]["content"]
    assert "Recalled context" in system and "Crumb and Co" in system
    with tenant_context(org_a):
        row = AuditLog.objects.get(event="memory.read")
    assert row.target == f"message:{response.json()['id']}"
    assert row.details["thread_id"] == second.pk
    assert [(m["message_id"], m["thread_id"]) for m in row.details["memories"]] == [(r["message_id"], r["thread_id"]) for r in recalled]
    assert all(m["score"] > 0 for m in row.details["memories"])


def test_the_answers_why_disclosure_links_the_memories_it_used(api, org_a, alice_client, openai_fake):
    first, _ = make_thread(org_a, "Bakery", index=False)
    send(api, first, "Our sourdough bakery will be called Crumb and Co")
    second, _ = make_thread(org_a, "Signage", index=False)
    recalled = send(api, second, "sourdough bakery name?").json()["routing"]["recalled"]
    page = alice_client.get(f"/threads/{second.pk}/").content.decode()
    assert "Memories used" in page
    assert f'href="/threads/{first.pk}/#message-{recalled[0]["message_id"]}"' in page


def test_no_memory_read_is_audited_when_nothing_is_recalled(api, org_a, openai_fake):
    thread, _ = make_thread(org_a, "Alone", index=False)
    assert send(api, thread, "hello there").status_code == 201
    with tenant_context(org_a):
        assert not AuditLog.objects.filter(event="memory.read").exists()


def test_with_qdrant_down_chats_work_the_backlog_grows_and_reindex_drains_it(api, org_a, openai_fake, settings, caplog):
    settings.QDRANT_URL = f"http://127.0.0.1:{closed_port()}"
    settings.DAC_MEMORY_TIMEOUT = 1
    store.reset()
    first, _ = make_thread(org_a, "Bakery", index=False)
    second, _ = make_thread(org_a, "Signage", index=False)
    with caplog.at_level(logging.INFO, logger="threads.memory"):
        assert send(api, first, "Our sourdough bakery will be called Crumb and Co").status_code == 201
        assert send(api, second, "what is the sourdough bakery called?").status_code == 201
        logged = len(caplog.records)
        assert send(api, second, "and the sourdough bakery opening date?").status_code == 201
        assert len(caplog.records) == logged  # logged once, not once per chat
    with tenant_context(org_a):
        backlog = list(MemoryBacklog.objects.order_by("target_id"))
        assert len(backlog) == 6 and all(row.attempts >= 1 and "Qdrant" in row.last_error for row in backlog)
        assert Message.objects.filter(status="complete").count() == 6  # every message was saved
    with pytest.raises(CommandError, match="Qdrant is unavailable"):
        call_command("reindex_memory", "org-a")

    settings.QDRANT_URL = ""  # back to a working (in-memory) Qdrant
    call_command("reindex_memory")
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()
    assert len(points(org_id=org_a.pk)) == 6
    third, _ = make_thread(org_a, "Later", index=False)
    assert recall(org_a, third, "sourdough bakery") != []


def test_reindex_pending_retries_only_the_backlog(org_a, settings):
    settings.QDRANT_URL = f"http://127.0.0.1:{closed_port()}"
    store.reset()
    _, messages = make_thread(org_a, "Queued", "alpha bravo charlie", "delta echo foxtrot")
    settings.QDRANT_URL = ""
    call_command("reindex_memory", "--pending")
    assert {p.id for p in points()} == {m.pk for m in messages}
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()
    out = io.StringIO()
    call_command("reindex_memory", "--pending", stdout=out)  # it printed nothing at all
    assert out.getvalue() == "The backlog is empty: nothing waits to be indexed.\n"


def test_the_next_index_call_retries_failed_rows_once_their_backoff_is_over(org_a, settings):
    settings.QDRANT_URL = f"http://127.0.0.1:{closed_port()}"
    settings.DAC_MEMORY_BACKOFF_SECONDS = 0
    store.reset()
    _, (queued,) = make_thread(org_a, "Queued", "alpha bravo charlie")
    settings.QDRANT_URL = ""
    make_thread(org_a, "Next", "delta echo foxtrot")
    assert queued.pk in {p.id for p in points()}


def test_reindex_rebuilds_an_org_from_the_database(org_a, org_b):
    _, kept = make_thread(org_a, "Kept", "alpha bravo", "charlie delta")
    _, other = make_thread(org_b, "Other org", "echo foxtrot")
    store.get_store().client.delete(store.collection_name(), points_selector=models.PointIdsList(points=[kept[0].pk]))
    stale = document_vector("stale point", org_id=org_a.pk)
    store.get_store().client.upsert(store.collection_name(), points=[models.PointStruct(
        id=999_999_999, vector={store.LEXICAL: models.SparseVector(indices=stale.indices, values=stale.values)},
        payload={"org_id": org_a.pk, "thread_id": 1, "message_id": 999_999_999, "role": "user", "created_at": ""},
    )])
    call_command("reindex_memory", "org-a")
    assert {p.id for p in points(org_id=org_a.pk)} == {m.pk for m in kept}
    assert {p.id for p in points(org_id=org_b.pk)} == {other[0].pk}  # another org is untouched


def test_reindex_of_all_orgs_drops_points_of_orgs_that_no_longer_exist(org_a):
    make_thread(org_a, "Kept", "alpha bravo")
    orphan = document_vector("orphan", org_id=987_654)
    store.get_store().client.upsert(store.collection_name(), points=[models.PointStruct(
        id=888_888_888, vector={store.LEXICAL: models.SparseVector(indices=orphan.indices, values=orphan.values)},
        payload={"org_id": 987_654, "thread_id": 1, "message_id": 888_888_888, "role": "user", "created_at": ""},
    )])
    call_command("reindex_memory")
    assert {p.payload["org_id"] for p in points()} == {org_a.pk}


def test_a_second_process_cannot_open_the_embedded_folder_and_says_to_use_a_server(tmp_path, settings, caplog):
    from qdrant_client import QdrantClient

    holder = QdrantClient(path=str(tmp_path / "qdrant"))  # stands for the process that owns it
    try:
        settings.QDRANT_PATH = str(tmp_path / "qdrant")
        # qdrant-client's lock is per process; a second open in this process is refused by the
        # same check another process hits, so the same error path runs.
        with caplog.at_level(logging.ERROR, logger="threads.memory"), pytest.raises(store.StoreUnavailable, match="QDRANT_URL"):
            store.get_store()
        assert any("QDRANT_URL" in r.getMessage() for r in caplog.records)
    finally:
        holder.close()


def test_a_slow_store_costs_a_chat_at_most_the_recall_budget(org_a, settings, caplog):
    """A Qdrant that accepts connections and never answers: recall gives up after the budget."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        settings.QDRANT_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings.DAC_MEMORY_TIMEOUT = 5
        settings.DAC_MEMORY_RECALL_BUDGET_MS = 200
        current, _ = make_thread(org_a, "Now", index=False)
        with caplog.at_level(logging.WARNING, logger="threads.memory"):
            for text in ("anything at all", "anything else", "and more"):  # the third finds every slot busy
                started = time.monotonic()
                assert recall(org_a, current, text) == []
                assert time.monotonic() - started < 1.0  # the client would wait 5 s
        assert any("DAC_MEMORY_RECALL_BUDGET_MS" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        holder.join()
        for conn in held:
            conn.close()
        listener.close()


# --- forgetting ---


def test_forgetting_a_message_removes_its_point_and_a_rebuild_does_not_bring_it_back(org_a, bob):
    _, (kept, gone) = make_thread(org_a, "Mixed", "harmless roadmap notes", "the roadmap salary figures")
    thread_id = memory.forget_message(org_id=org_a.pk, message_id=gone.pk, actor=Actor.user(bob), user=bob)
    assert thread_id == gone.thread_id
    assert {p.id for p in points()} == {kept.pk}
    call_command("reindex_memory", "org-a")
    assert {p.id for p in points()} == {kept.pk}
    with tenant_context(org_a):
        assert ForgottenMemory.objects.get(message=gone).forgotten_by == bob
        assert AuditLog.objects.get(event="memory.forget").target == f"message:{gone.pk}"
        assert Message.objects.filter(pk=gone.pk).exists()  # the thread keeps the message


def test_forgetting_another_orgs_message_is_not_found(org_a, org_b):
    _, (secret,) = make_thread(org_a, "Secret", "alpha bravo")
    with pytest.raises(NotFound):
        memory.forget_message(org_id=org_b.pk, message_id=secret.pk, actor=Actor.system())
    assert {p.id for p in points()} == {secret.pk}


def test_deleting_a_thread_forgets_its_memories_only(org_a):
    doomed, _ = make_thread(org_a, "Doomed", "alpha bravo", "charlie delta")
    _, (kept,) = make_thread(org_a, "Kept", "echo foxtrot")
    with tenant_context(org_a):
        Thread.objects.get(pk=doomed.pk).delete()
    memory.forget_thread(org_id=org_a.pk, thread_id=doomed.pk)
    assert {p.id for p in points()} == {kept.pk}
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()


def test_forgetting_a_thread_while_qdrant_is_down_is_queued_and_applied_later(org_a, settings):
    doomed, _ = make_thread(org_a, "Doomed", "alpha bravo")
    settings.QDRANT_URL = f"http://127.0.0.1:{closed_port()}"
    memory.forget_thread(org_id=org_a.pk, thread_id=doomed.pk)  # does not raise
    with tenant_context(org_a):
        assert MemoryBacklog.objects.filter(kind="thread", target_id=doomed.pk).exists()
    settings.QDRANT_URL = ""
    call_command("reindex_memory", "org-a", "--pending")
    assert points() == []


# --- the background indexer ---


def test_by_default_indexing_runs_on_a_background_thread(org_a, settings):
    settings.DAC_MEMORY_INDEX_MODE = "background"
    _, messages = make_thread(org_a, "Background", "alpha bravo", "charlie delta")
    assert worker.wait_idle(10)
    assert {p.id for p in points()} == {m.pk for m in messages}
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()
