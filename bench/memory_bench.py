"""Memory recall latency in embedded local mode (qdrant-client on disk, no server).

    .venv/bin/python bench/memory_bench.py                      # 10,000 then 100,000 messages
    .venv/bin/python bench/memory_bench.py --sizes 10000 --queries 500 --corpus-idf
    .venv/bin/python bench/memory_bench.py --qdrant-url http://127.0.0.1:6333   # a server instead

What it does: synthesises varied chat messages (a Zipf-distributed vocabulary of made-up
words over a few hundred topics, lengths from a short question to a long answer), writes
them into one org of a fresh on-disk collection under a temp dir through the same code the
app uses (threads.memory.text vectors, threads.memory.store schema), and then times the
recall query the send pipeline runs (`selectors._query`: tokenize, org filter, exclude the
current thread, lexical sparse search with IDF, top-k). PostgreSQL is not involved: the
re-read of the hits by primary key is the same few milliseconds at any size.

Numbers are wall-clock per query, p50 / p99 / max, in this process, after one warm-up query.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from qdrant_client import models  # noqa: E402

from threads.memory import store  # noqa: E402
from threads.memory.selectors import _query  # noqa: E402
from threads.memory.text import document_vector  # noqa: E402

ORG_ID = 1
SYLLABLES = "ka lo mi ne ru ta so vi de pa gu ri ze bo fa ni lu che mo sa ke di po tu ra ve gi no".split()
COMMON = "project team meeting deploy server client issue update report design budget review release plan data".split()


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set(COMMON)
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Corpus:
    """Messages drawn from topics: each topic favours its own 40 words over the Zipf background."""

    def __init__(self, seed: int = 7, vocab: int = 20_000, topics: int = 400) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(vocab, self.rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]  # Zipf
        self.topics = [self.rng.sample(self.words, 40) for _ in range(topics)]

    def message(self) -> tuple[int, str]:
        topic = self.rng.randrange(len(self.topics))
        length = int(min(max(self.rng.lognormvariate(3.2, 0.9), 4), 400))  # ~25 words median, long tail
        background = self.rng.choices(self.words, weights=self.weights, k=length)
        focus = [self.rng.choice(self.topics[topic]) for _ in range(max(1, length // 4))]
        words = background + focus
        self.rng.shuffle(words)
        return topic, " ".join(words)

    def query(self) -> str:
        topic = self.rng.choice(self.topics)
        return " ".join(self.rng.sample(topic, 3) + self.rng.choices(self.words, weights=self.weights, k=3))


def fill(target: int, have: int, corpus: Corpus, batch: int = 500) -> float:
    """Upsert messages have+1 .. target into the org; returns seconds spent."""
    started = time.perf_counter()
    s = store.get_store()
    for start in range(have, target, batch):
        points = []
        for message_id in range(start + 1, min(start + batch, target) + 1):
            topic, text = corpus.message()
            sparse = document_vector(text, org_id=ORG_ID)
            points.append(models.PointStruct(
                id=message_id,
                vector={store.LEXICAL: models.SparseVector(indices=sparse.indices, values=sparse.values)},
                payload={"org_id": ORG_ID, "thread_id": 1 + message_id // 20, "message_id": message_id, "role": "user", "created_at": "2026-01-01T00:00:00+00:00"},
            ))
        s.call(lambda c, p=points: c.upsert(store.collection_name(), points=p, wait=True))
    return time.perf_counter() - started


def measure(corpus: Corpus, queries: int, top_k: int, budget: float) -> list[float]:
    """Up to `queries` timed queries, stopping early (after at least 20) once `budget` seconds are spent."""
    timings: list[float] = []
    _query(ORG_ID, corpus.query(), limit=top_k * 2 + 2, min_score=1.0, min_dense_score=None, embedder=None, exclude_thread_id=5)  # warm-up
    deadline = time.perf_counter() + budget
    for _ in range(queries):
        if len(timings) >= 20 and time.perf_counter() > deadline:
            break
        text = corpus.query()
        started = time.perf_counter()
        _query(ORG_ID, text, limit=top_k * 2 + 2, min_score=1.0, min_dense_score=None, embedder=None, exclude_thread_id=5)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(label: str, timings: list[float]) -> str:
    return (f"{label}: p50 {pct(timings, 50):.1f} ms, p99 {pct(timings, 99):.1f} ms, max {max(timings):.1f} ms, "
            f"mean {statistics.fmean(timings):.1f} ms over {len(timings)} queries")


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="stored messages to measure at, ascending")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of querying per size (at least 20 queries)")
    parser.add_argument("--corpus-idf", action="store_true", help="also time IDF scoped to the org (the server default)")
    parser.add_argument("--qdrant-url", default="", help="measure a Qdrant server (in a throwaway collection) instead of local mode")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    corpus = Corpus()
    with tempfile.TemporaryDirectory(prefix="dac-memory-bench-") as tmp:
        settings.QDRANT_URL = args.qdrant_url
        settings.QDRANT_PATH = str(Path(tmp) / "qdrant")
        settings.DAC_MEMORY_TIMEOUT = 60
        if args.qdrant_url:
            settings.DAC_MEMORY_COLLECTION = f"dac_memory_bench_{os.getpid()}"
        store.reset()
        where = f"server {args.qdrant_url}, collection {store.collection_name()}" if args.qdrant_url else f"local mode on disk at {settings.QDRANT_PATH}"
        print(f"qdrant {where}; one org; top_k {args.top_k}; python {sys.version.split()[0]}")
        have = 0
        for size in sizes:
            seconds = fill(size, have, corpus)
            rate = (size - have) / seconds
            have = size
            disk = "" if args.qdrant_url else f"{folder_size(Path(settings.QDRANT_PATH)) / 1e6:.0f} MB on disk; "
            print(f"\n{size:,} messages: indexed {rate:,.0f} messages/s; {disk}max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
            settings.DAC_MEMORY_IDF_SCOPE = "global"
            print("  " + report("recall (IDF global: local-mode default)", measure(corpus, args.queries, args.top_k, args.budget)))
            if args.corpus_idf:
                settings.DAC_MEMORY_IDF_SCOPE = "org"
                print("  " + report("recall (IDF scoped to the org)", measure(corpus, args.queries, args.top_k, args.budget / 4)))
            if not args.qdrant_url:
                # Reopening the folder is what a restart costs: local mode loads every point into memory.
                store.reset()
                started = time.perf_counter()
                store.get_store().call(lambda c: c.count(store.collection_name()))
                print(f"  reopen (process start): {time.perf_counter() - started:.1f} s")
        if args.qdrant_url:
            store.get_store().client.delete_collection(store.collection_name())
        store.reset()


if __name__ == "__main__":
    main()
