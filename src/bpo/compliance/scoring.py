"""Sanctions screening: a name (and what else is known of the party) against every listed
name and alias, scored 0..1 and explained.

The name score aligns the two names word by word (`names.tokens`: any script, any order,
legal forms aside). Each pair of words scores by rapidfuzz's normalised Indel similarity,
or of their phonetic keys (kh/h, w/v, …) a little below, or as one name's other spelling
(Mohammed/Muhammad); a word may also match two words run together ("Abdulrahman" / "Abdul
Rahman"). Words weigh by their rarity in the list (inverse document frequency): "Muhammad"
or "Bank" agreeing says less than "Zaydan". The score is the matched weight (times each
pair's similarity) over all the weight, where a listed word the query lacks counts about a
third (a dropped middle name) and a query word the listed name lacks counts fully (it names
someone else).

Only names sharing a word with the query, exactly or within one edit of its key (a
symmetric-deletion index, as SymSpell), are scored at all: a query touches a few dozen
names, not 21,000. Secondary signals then move the score: a matching country, birth date
or document number raises it, a different birth year or a person against an organisation
lowers it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rapidfuzz.distance import Indel

from bpo.compliance import names
from bpo.compliance.lists import ListEntry

# Chosen on synthetic.labelled_set (benchmarks/compliance.py prints the sweep): the lowest
# threshold keeping false positives under 0.5% (a quarter of the 2% goal: real names are not
# synthetic ones) on two 10,000-name sets, seeds 1 and 7: recall 0.994 and 0.993, false
# positives 0.44% and 0.34% (at 0.82: 0.72% and 0.56%; at 0.86, recall 0.991 and 0.991).
THRESHOLD: Final = 0.84

LIST_ONLY_WEIGHT: Final = 0.35  # a listed word the query lacks (dropped middle names)
KEY_FACTOR: Final = 0.95  # words that agree only once transliteration is folded
SKELETON_SIMILARITY: Final = 0.8  # an unvowelled word's consonants agree (Arabic script)
WORD_FLOOR: Final = 0.75  # below this two words do not match at all
CANDIDATES: Final = 64  # names fully scored per query, by weighted word coverage
MIN_COVERAGE: Final = 0.45  # of the query's word weight, for a name to be scored
MIN_NAME_SCORE: Final = 0.6  # signals never lift a name below this into a hit

COUNTRY_MATCH: Final = 0.03
BIRTH_DATE_MATCH: Final = 0.08
BIRTH_YEAR_MATCH: Final = 0.05
BIRTH_YEAR_CONFLICT: Final = -0.10
IDENTIFIER_MATCH: Final = 0.15
KIND_CONFLICT: Final = -0.10


@dataclass(frozen=True)
class Query:
    name: str
    kind: str | None = None  # "person" | "organization" | None
    country: str | None = None  # ISO 3166-1 alpha-2
    birth_date: str | None = None  # "YYYY-MM-DD" or "YYYY"
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    source_id: str
    score: float  # 0..1, final
    name_score: float  # 0..1, names alone
    matched_name: str  # the listed name or alias that scored best
    explanation: dict[str, Any]  # JSON-able; see _explain
    fingerprint: str  # the ListEntry's, so a decision is tied to the entry's version


@dataclass(frozen=True)
class _Name:
    entry: int
    display: str
    tokens: tuple[str, ...]
    alias: bool


@dataclass
class _Prepared:
    """A query's words, their weights and the listed words each one is near."""

    tokens: list[str]
    weights: list[float]
    near: list[dict[str, float]]
    joined: list[dict[str, float]]  # words i and i+1 run together, against listed words
    split: list[dict[tuple[str, str], float]]  # word i cut into two listed words


@dataclass
class _Scored:
    score: float
    edges: list[tuple[float, tuple[int, ...], tuple[int, ...]]]
    query_only: list[int]
    list_only: list[int]


Tokenizer = Callable[[str], list[str]]


class Index:
    """Every name and alias of the entries, ready to screen against."""

    def __init__(self, entries: Iterable[ListEntry], *, tokenize: Tokenizer = names.tokens):
        self._tokenize = tokenize
        self._entries = list(entries)
        self._names: list[_Name] = []
        self._postings: dict[str, list[int]] = {}
        self._ids: dict[str, list[int]] = {}
        self._names_of: list[list[int]] = [[] for _ in self._entries]
        for number, entry in enumerate(self._entries):
            self._add(number, entry)
        self._weight = _weights(self._postings, len(self._names))
        self._rare = max(self._weight.values(), default=1.0)
        self._name_weight = [sum(self._weight[w] for w in n.tokens) for n in self._names]
        self._by_skeleton: dict[str, list[str]] = {}
        self._deletes: dict[str, list[str]] = {}
        for token in self._postings:
            self._index_token(token)
        self._near_cache: dict[str, dict[str, float]] = {}
        self._fingerprints: dict[int, str] = {}

    def _add(self, number: int, entry: ListEntry) -> None:
        seen: set[tuple[str, ...]] = set()
        for display in (entry.name, *entry.aliases):
            words = tuple(self._tokenize(display))
            if not words or words in seen:
                continue
            seen.add(words)
            nid = len(self._names)
            self._names.append(_Name(number, display, words, display != entry.name))
            self._names_of[number].append(nid)
            for token in set(words):
                self._postings.setdefault(token, []).append(nid)
        for value in entry.identifiers:
            if value := _identifier(value):
                self._ids.setdefault(value, []).append(number)

    def _index_token(self, token: str) -> None:
        for variant in _variants(token):
            self._deletes.setdefault(variant, []).append(token)
        if len(skeleton := names.skeleton(token)) >= 3:
            self._by_skeleton.setdefault(skeleton, []).append(token)

    def __len__(self) -> int:
        return len(self._names)

    # ------------------------------------------------------------------------ screening

    def screen(self, query: Query, threshold: float = THRESHOLD, limit: int = 10) -> list[Hit]:
        """The entries whose best name scores at least `threshold` with the signals, best
        first. ValueError for a name with no word left once normalised."""
        prepared = self._prepare(query.name)
        best: dict[int, tuple[_Scored, _Name]] = {}
        for nid in self._candidates(prepared, query):
            name = self._names[nid]
            scored = self._align(prepared, name.tokens)
            held = best.get(name.entry)
            if held is None or scored.score > held[0].score:
                best[name.entry] = (scored, name)
        hits = []
        for number, (scored, name) in best.items():
            entry = self._entries[number]
            signals = _signals(query, entry)
            score = min(1.0, max(0.0, scored.score + sum(s["effect"] for s in signals)))
            if score >= threshold and scored.score >= MIN_NAME_SCORE:
                explanation = _explain(prepared, name, scored, signals, score)
                hits.append(self._hit(number, score, scored.score, name, explanation))
        hits.sort(key=lambda h: (-h.score, -h.name_score, h.source_id))
        return hits[:limit]

    def screen_many(
        self, queries: Sequence[Query], threshold: float = THRESHOLD
    ) -> list[list[Hit]]:
        """`screen` for each query (ValueError at the first empty name)."""
        return [self.screen(query, threshold) for query in queries]

    def _prepare(self, name: str) -> _Prepared:
        words = self._tokenize(name)
        if not words:
            raise ValueError(f"the name {name[:80]!r} has no letters or digits to screen")
        near = [self._near(w) for w in words]
        weights = [
            self._weight.get(w) or _best_weight(n, self._weight, self._rare)
            for w, n in zip(words, near, strict=True)
        ]
        joined = [self._near(a + b) if len(words) > 1 else {} for a, b in itertools.pairwise(words)]
        split = [self._splits(w) for w in words]
        return _Prepared(words, weights, near, joined, split)

    def _near(self, word: str) -> dict[str, float]:
        """The listed words near `word`, with their similarity (WORD_FLOOR or more)."""
        found = self._near_cache.get(word)
        if found is None:
            if len(self._near_cache) > 200_000:
                self._near_cache.clear()
            found = self._near_cache[word] = self._lookup(word)
        return found

    def _lookup(self, word: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for same in (word, *names.spellings(word)):
            if same in self._postings:
                found[same] = 1.0
        k = names.key(word)
        pool = {other for v in _variants(word) for other in self._deletes.get(v, ())}
        for other in pool:
            s = max(
                Indel.normalized_similarity(word, other),
                KEY_FACTOR * Indel.normalized_similarity(k, names.key(other)),
            )
            if s >= WORD_FLOOR and s > found.get(other, 0.0):
                found[other] = s
        skeleton = names.skeleton(word)
        if len(skeleton) >= 3 and names.unvowelled(word):
            for other in self._by_skeleton.get(skeleton, ()):
                found[other] = max(found.get(other, 0.0), SKELETON_SIMILARITY)
        return found

    def _splits(self, word: str) -> dict[tuple[str, str], float]:
        """Two listed words that run together make `word` ("abdulrahman")."""
        if len(word) < 4:
            return {}
        return {
            (word[:i], word[i:]): 1.0
            for i in range(2, len(word) - 1)
            if word[:i] in self._postings and word[i:] in self._postings
        }

    def _candidates(self, prepared: _Prepared, query: Query) -> list[int]:
        """The names covering most of the query's word weight (at most CANDIDATES), and
        those of entries holding one of the query's document numbers."""
        total = sum(prepared.weights)
        cover: dict[int, float] = {}
        for weight, near, split in zip(
            prepared.weights, prepared.near, prepared.split, strict=True
        ):
            best: dict[int, float] = {}
            for word, s in near.items():
                for nid in self._postings[word]:
                    if s > best.get(nid, 0.0):
                        best[nid] = s
            for a, b in split:
                for nid in set(self._postings[a]).intersection(self._postings[b]):
                    best[nid] = 1.0
            for nid, s in best.items():
                cover[nid] = cover.get(nid, 0.0) + weight * s
        for i, joined in enumerate(prepared.joined):
            weight = prepared.weights[i] + prepared.weights[i + 1]
            for word, s in joined.items():
                for nid in self._postings[word]:
                    cover[nid] = cover.get(nid, 0.0) + weight * s * 0.5
        floor = MIN_COVERAGE * total
        # Ranked by an estimate of the final score: listed words left over count against.
        heavy = self._name_weight
        estimate = {
            nid: c / (total + LIST_ONLY_WEIGHT * max(0.0, heavy[nid] - c))
            for nid, c in cover.items()
            if c >= floor
        }
        ranked = sorted(estimate, key=estimate.__getitem__, reverse=True)[:CANDIDATES]
        for value in query.identifiers:
            for number in self._ids.get(_identifier(value), ()):
                ranked += self._names_of[number]
        return ranked

    # ------------------------------------------------------------------------ name score

    def _align(self, prepared: _Prepared, listed: tuple[str, ...]) -> _Scored:
        """Word pairs, best first, each word used once; then the weighted score."""
        edges: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = []
        for i, near in enumerate(prepared.near):
            for j, word in enumerate(listed):
                if s := near.get(word):
                    edges.append((s, (i,), (j,)))
        for i, split in enumerate(prepared.split):
            for (a, b), s in split.items():
                if a in listed and b in listed and a != b:
                    edges.append((s, (i,), (listed.index(a), listed.index(b))))
        for i, joined in enumerate(prepared.joined):
            for j, word in enumerate(listed):
                if s := joined.get(word):
                    edges.append((s, (i, i + 1), (j,)))
        edges.sort(key=lambda e: (-e[0], -len(e[1]) - len(e[2])))
        used_q: set[int] = set()
        used_l: set[int] = set()
        chosen = []
        for s, qs, ls in edges:
            if used_q.isdisjoint(qs) and used_l.isdisjoint(ls):
                used_q.update(qs)
                used_l.update(ls)
                chosen.append((s, qs, ls))
        query_only = [i for i in range(len(prepared.tokens)) if i not in used_q]
        list_only = [j for j in range(len(listed)) if j not in used_l]
        return _Scored(
            self._score(prepared, listed, chosen, query_only, list_only),
            chosen,
            query_only,
            list_only,
        )

    def _score(
        self,
        prepared: _Prepared,
        listed: tuple[str, ...],
        edges: list[tuple[float, tuple[int, ...], tuple[int, ...]]],
        query_only: list[int],
        list_only: list[int],
    ) -> float:
        qw, lw = prepared.weights, self._weight
        matched = total = 0.0
        for s, qs, ls in edges:
            weight = sum(qw[i] for i in qs) + sum(lw[listed[j]] for j in ls)
            matched += s * weight
            total += weight
        total += sum(qw[i] for i in query_only)
        total += LIST_ONLY_WEIGHT * sum(lw[listed[j]] for j in list_only)
        return matched / total if total else 0.0

    # --------------------------------------------------------------------------- signals

    def _hit(
        self, number: int, score: float, name_score: float, name: _Name, explanation: dict[str, Any]
    ) -> Hit:
        fingerprint = self._fingerprints.get(number)
        if fingerprint is None:  # hashed once, when the entry first hits
            fingerprint = self._fingerprints[number] = self._entries[number].fingerprint()
        entry = self._entries[number]
        return Hit(entry.source_id, score, name_score, name.display, explanation, fingerprint)


def _signals(query: Query, entry: ListEntry) -> list[dict[str, Any]]:
    """What besides the name moved the score, each with its effect and why."""
    out: list[dict[str, Any]] = []
    if query.country and query.country.upper() in entry.countries:
        out.append(_signal("country", COUNTRY_MATCH, f"{query.country.upper()} is listed"))
    if query.birth_date and entry.birth_dates:
        out += _birth_signal(query.birth_date, entry.birth_dates)
    ids = {_identifier(v) for v in entry.identifiers} - {""}
    if same := sorted(ids & {_identifier(v) for v in query.identifiers}):
        out.append(_signal("identifier", IDENTIFIER_MATCH, f"{same[0]} is listed"))
    known = entry.kind in ("person", "organization", "vessel", "aircraft")
    if query.kind and known and (query.kind == "person") != (entry.kind == "person"):
        detail = f"a {query.kind} against a listed {entry.kind}"
        out.append(_signal("kind", KIND_CONFLICT, detail))
    return out


def _birth_signal(born: str, listed: tuple[str, ...]) -> list[dict[str, Any]]:
    if born in listed:
        return [_signal("birth_date", BIRTH_DATE_MATCH, f"born {born}, as listed")]
    year = born[:4]
    if any(d[:4] == year for d in listed):
        return [_signal("birth_date", BIRTH_YEAR_MATCH, f"born in {year}, as listed")]
    shown = ", ".join(listed[:3]) + (", …" if len(listed) > 3 else "")
    return [_signal("birth_date", BIRTH_YEAR_CONFLICT, f"born {born}; listed {shown}")]


def _signal(kind: str, effect: float, detail: str) -> dict[str, Any]:
    return {"signal": kind, "effect": effect, "detail": detail}


def _explain(
    prepared: _Prepared, name: _Name, scored: _Scored, signals: list[dict[str, Any]], score: float
) -> dict[str, Any]:
    q, listed = prepared.tokens, name.tokens
    matched = [
        {
            "query": " ".join(q[i] for i in qs),
            "list": " ".join(listed[j] for j in ls),
            "similarity": round(s, 4),
        }
        for s, qs, ls in scored.edges
    ]
    return {
        "query": " ".join(sorted(q)),
        "matched": " ".join(sorted(listed)),
        "alias": name.alias,
        "tokens": {
            "matched": matched,
            "query_only": [q[i] for i in scored.query_only],
            "list_only": [listed[j] for j in scored.list_only],
        },
        "name_score": round(scored.score, 4),
        "signals": signals,
        "score": round(score, 4),
    }


# ------------------------------------------------------------------------------ helpers


def _weights(postings: dict[str, list[int]], count: int) -> dict[str, float]:
    """Inverse document frequency over names: rare words weigh more."""
    return {word: 1.0 + math.log(count / len(nids)) for word, nids in postings.items()}


def _best_weight(near: dict[str, float], weight: dict[str, float], rare: float) -> float:
    """A query word the list lacks weighs as its closest listed word, or as the rarest."""
    if not near:
        return rare
    closest = max(near, key=lambda w: near[w])
    return weight[closest]


def _variants(word: str) -> set[str]:
    """The word and its key, and (for four letters or more) each with one letter dropped:
    two words one edit apart, as written or once transliteration is folded, share one."""
    k = names.key(word)
    out = {word, k}
    if len(word) >= 4:
        out.update(_deletions(word))
        if len(k) >= 3:
            out.update(_deletions(k))
    return out


def _deletions(word: str) -> list[str]:
    """`word` with one letter dropped, each way (two words one edit apart share one)."""
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _identifier(value: str) -> str:
    """Document numbers as compared: IMO 9187629 and 9187629 are one vessel."""
    return names.identifier(value).removeprefix("IMO")
