"""Music BPE learning (SymphonyNet §3.2) on a table of distinct note-group words.

Every unordered token pair of every word is counted, weighted by the word's corpus frequency;
the most frequent pair is merged (ties → smallest ``(a, b)``), as the reference learner does,
but pair counts are updated incrementally and the next pair comes from a lazy-deletion heap
instead of a full rescan per merge.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from itertools import combinations


def learn_merges(
    words: Mapping[tuple[int, ...], int], n_merges: int, first_new_id: int
) -> list[tuple[int, int, int]]:
    """Learn up to ``n_merges`` merges on a word table (reference §3.2 semantics, incremental).

    Args:
        words: word (tuple of distinct token ids, any order) → frequency. Words with < 2 tokens
            are ignored.
        n_merges: number of merges wanted; learning stops early when no pair is left.
        first_new_id: id of the first created token (must exceed every id in ``words``); merge
            ``k`` creates token ``first_new_id + k``.

    Returns:
        ``[(a, b, count), ...]`` in creation order, ``a < b``.
    """
    return learn_merges_and_words(words, n_merges, first_new_id)[0]


def learn_merges_and_words(
    words: Mapping[tuple[int, ...], int], n_merges: int, first_new_id: int
) -> tuple[list[tuple[int, int, int]], dict[tuple[int, ...], set[int]]]:
    """:func:`learn_merges` plus every learned word's final token set.

    The learner applies merge k to every word holding both parts, in merge order; that is exactly
    what §3.3 applying does to a word, so the final sets pre-fill the apply cache.
    """
    kept: list[tuple[int, ...]] = []
    table: list[set[int]] = []
    freqs: list[int] = []
    for word, freq in words.items():
        tokens = set(word)
        if len(tokens) >= 2 and freq > 0:
            kept.append(word)
            table.append(tokens)
            freqs.append(int(freq))
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    # pair → ids of the words that contained it when it was counted. Entries are never removed:
    # a word that lost a token since is skipped when the pair is merged (lazy deletion).
    where: dict[tuple[int, int], list[int]] = defaultdict(list)
    for wi, tokens in enumerate(table):
        freq = freqs[wi]
        for pair in combinations(sorted(tokens), 2):
            pair_count[pair] += freq
            where[pair].append(wi)
    # Max-heap by count with lazy deletion: an entry is live only while it still equals the
    # pair's current count; the (a, b) tuple order gives the reference's smallest-pair tie-break.
    heap = [(-count, pair) for pair, count in pair_count.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int, int]] = []
    while len(merges) < n_merges:
        best = None
        while heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_count.get(pair, 0) == -neg_count:
                best = (pair, -neg_count)
                break
        if best is None:
            break
        (a, b), count = best
        new = first_new_id + len(merges)
        merges.append((a, b, count))
        # moved[t]: summed frequency of the merged words that also hold t; those counts move from
        # the pairs (t, a) and (t, b) to (t, new) in one update per distinct t.
        moved: dict[int, int] = defaultdict(int)
        for wi in where.pop((a, b)):
            word = table[wi]
            if a not in word or b not in word:
                continue
            freq = freqs[wi]
            word.discard(a)
            word.discard(b)
            for t in word:
                moved[t] += freq
                where[(t, new)].append(wi)  # ``new`` is the largest id so far: the pair is ordered
            word.add(new)
        del pair_count[(a, b)]
        for t, freq in moved.items():
            pair_count[(t, new)] = freq
            heapq.heappush(heap, (-freq, (t, new)))
            for old in ((t, a) if t < a else (a, t), (t, b) if t < b else (b, t)):
                count = pair_count[old] - freq
                if count > 0:
                    pair_count[old] = count
                    heapq.heappush(heap, (-count, old))
                else:
                    del pair_count[old]
                    where.pop(old, None)
    return merges, dict(zip(kept, table, strict=True))


