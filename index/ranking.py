"""How search results are ordered: the one definition both kinds of engine follow.

`SearchRequest.sort` is one of `cyz.index.base.SORTS`:

- `date`: newest `published_at` first (undated last), then `id`;
- `relevance`: the article's `relevance` (0–1, from tagging) first, then the text
  score, then newest first, then `id`;
- `best` (the default): the blend

      TEXT_WEIGHT      * text / (text + TEXT_HALF)                 (0 … 1)
    + RELEVANCE_WEIGHT * relevance                                  (0 … 1)
    + RECENCY_WEIGHT   * 0.5 ** (age in days / RECENCY_HALF_LIFE)   (0 … 1; undated: 0)

  where age is the distance of `published_at` from the start of today (UTC): a whole
  day's searches score alike (a script comparing two runs sees the same numbers), and
  Elasticsearch's decay functions measure a distance (`now/d` as their origin).

  then newest first, then `id`. The text score alone does not rank: a word found in
  most articles scores alike everywhere (FTS5's bm25 gives it ~2e-06 for every hit),
  so a marathon and a signed agreement that both say 遵义 are told apart by their
  `relevance`, and last week's news by its recency. `text` is the engine's own BM25
  score (title weighted `TITLE_BOOST`×), squashed to 0…1 so that no engine's scale
  swamps the other two parts; the engines' scores are alike, not equal, so `best`
  orders alike on both, while the *set* of results is always the same.

  A query without words to score (the empty query, or exclusions only) lists newest
  first under `best`: browsing shows the latest.
"""

from __future__ import annotations

TITLE_BOOST = 5.0  # a match in the title counts five times one in the body
TEXT_WEIGHT = 1.0
TEXT_HALF = 5.0  # the text score that counts half of TEXT_WEIGHT
RELEVANCE_WEIGHT = 1.0
RECENCY_WEIGHT = 0.5
RECENCY_HALF_LIFE = 30.0  # days

DAY_SECONDS = 86_400


def today_start(now: float) -> float:
    """The start of the UTC day of `now` (epoch seconds): the origin of recency."""
    return now - now % DAY_SECONDS
