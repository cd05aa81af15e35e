"""Text to a lexical sparse vector: no model, no network, the same on every process.

Tokens are lowercase unicode words (`\\w+`) minus stopwords and one-character noise, with a
light English suffix stripping; runs of CJK characters, which have no spaces between words,
become overlapping character bigrams. Each token is hashed to a stable 32-bit index
(blake2b, not Python's salted `hash()`), so a vector written by one process matches a query
from any other. Document values are BM25-saturated term frequencies with length
normalisation against a fixed average length; query values are 1 per distinct term. Qdrant's
IDF modifier supplies the inverse document frequency, so the score of a match is BM25.

The hash is keyed by the org: the same word is a different index in every org. Qdrant counts
document frequencies per index over the whole collection (unless the query scopes the IDF
corpus to the org, see selectors.py), so with one global hash an org's scores would move with
other orgs' vocabularies and reveal something of them; keyed, an index's document frequency
counts one org's messages only, and one org's query cannot match another org's vectors,
filter or no filter (short of a 32-bit collision).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

# BM25 parameters: k1 saturates repeated terms, b weighs length normalisation. AVG_LENGTH is
# a fixed stand-in for the collection's average document length (user messages are short,
# answers long); it only shapes how much a long answer is discounted.
K1 = 1.2
B = 0.75
AVG_LENGTH = 100.0
MAX_TOKENS = 4_000  # a 32k-character answer is indexed by its first few thousand words

_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_LATIN = re.compile(r"^[a-z]+$")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don
    down during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just let ll me more most
    mustn my myself no nor not now of off on once only or other ought our ours ourselves out
    over own re same shan she should shouldn so some such than that the their theirs them
    themselves then there these they this those through to too under until up ve very was
    wasn we were weren what when where which while who whom why will with won would wouldn
    you your yours yourself yourselves also get got like one would us may might must shall
    ok okay yes please thanks thank hi hello hey
    le la les un une des du de et est en que qui dans pour pas sur au aux ce cette ces il elle
    ils elles nous vous je tu son sa ses leur leurs mais ou donc ne
    el los las unos unas del y es por con para una lo se su sus al como pero mas
    der die das ein eine einen dem den des und ist nicht mit auf für von zu im sich auch
    o os um uma do da dos das em no na nos nas é com não
    """.split()
)


def _stem(token: str) -> str:
    """Strip a few English inflections so "indexing", "indexed" and "indexes" meet.

    Deliberately light: only plain a-z words longer than four letters, only endings whose
    removal rarely merges unrelated words. Both sides of a match go through the same rule.
    """
    if len(token) <= 4 or not _LATIN.match(token):
        return token
    if token.endswith("ies") and len(token) > 5:
        token = token[:-3] + "y"
    elif token.endswith("ing") and len(token) > 6:
        token = token[:-3]
    elif token.endswith("ed") and len(token) > 5:
        token = token[:-2]
    elif token.endswith(("sses", "xes", "zes", "ches", "shes")):
        token = token[:-2]
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    # "cache", "caches" and "cached" all end as "cach".
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for word in _WORD.findall((text or "").lower()):
        if _CJK.search(word):
            for run in _CJK.findall(word):
                tokens.extend(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
            word = _CJK.sub(" ", word).strip()
            if not word:
                continue
            for part in word.split():
                if len(part) > 1 and part not in STOPWORDS:
                    tokens.append(_stem(part))
            continue
        if len(word) < 2 or word in STOPWORDS or word.isdigit() and len(word) < 3:
            continue
        tokens.append(_stem(word))
        if len(tokens) >= MAX_TOKENS:
            break
    return tokens


def token_index(token: str, org_id: int) -> int:
    key = b"dac-memory-org:" + str(org_id).encode()
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4, key=key).digest(), "big")


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


def _merge(counts: Counter, org_id: int) -> dict[int, float]:
    # Two tokens hashing to one index (about one pair in 2^32 / n^2) simply add up.
    merged: dict[int, float] = {}
    for token, count in counts.items():
        index = token_index(token, org_id)
        merged[index] = merged.get(index, 0.0) + count
    return merged


def document_vector(text: str, *, org_id: int) -> Sparse:
    tokens = tokenize(text)
    if not tokens:
        return Sparse([], [])
    norm = K1 * (1 - B + B * len(tokens) / AVG_LENGTH)
    merged = _merge(Counter(tokens), org_id)
    indices = sorted(merged)
    return Sparse(indices, [round(merged[i] * (K1 + 1) / (merged[i] + norm), 6) for i in indices])


def query_vector(text: str, *, org_id: int) -> Sparse:
    merged = _merge(Counter(set(tokenize(text))), org_id)
    indices = sorted(merged)
    return Sparse(indices, [1.0] * len(indices))


def snippet(text: str, query: str, width: int = 220) -> str:
    """A window of `text` around the first query word it contains (or its start)."""
    flat = " ".join((text or "").split())
    if len(flat) <= width:
        return flat
    lowered = flat.lower()
    at = -1
    for word in _WORD.findall((query or "").lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        found = lowered.find(_stem(word))
        if found != -1 and (at == -1 or found < at):
            at = found
    start = 0 if at < width // 3 else at - width // 3
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")
