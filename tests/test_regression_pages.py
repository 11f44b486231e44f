"""Regression pages: small pages of our own that reproduce the hard cases of real ones.

Each `tests/pages/regression/NAME.html|.txt` has `NAME.expected.json` beside it:

- `title`, `origin`, `editor`, `author`, `script` — exact values when present;
- `published_at` — the record's value must start with it (a day or a full time);
- `fetched_at` — the fetch time passed to the pipeline (relative labels count from it);
- `must` / `must_not` — strings that must / must not occur in the clean text;
- `max_chars` — an upper bound on the text length (pages that are not articles);
- `is_article` — `false` for pages that are not articles (section indexes, news lists):
  the record must have `is_article` False and a non-empty `not_article_reason` string.
  An article case (no `max_chars`, no `is_article`) asserts `record.get("is_article",
  True) is True`, so an article wrongly flagged fails; `max_chars` cases without the key
  are not checked on it.

`.html` pages go through `build_record` as fetched bytes (so decoding is tested too);
`.txt` pages are text as a naive scraper saved it and go through `record_from_text`.
"""

import json
from pathlib import Path

import pytest

from cyz.pipelines.page import build_record, record_from_text

PAGES = Path(__file__).parent / "pages" / "regression"
CASES = sorted(p for p in PAGES.iterdir() if p.suffix in (".html", ".txt"))


def expected_for(path: Path) -> dict:
    return json.loads((PAGES / f"{path.stem}.expected.json").read_text(encoding="utf-8"))


def run(path: Path, expected: dict) -> dict:
    url = f"https://news.example.cn/regression/{path.stem}.html"
    if path.suffix == ".txt":
        return record_from_text(path.read_text(encoding="utf-8"), url)
    return build_record(path.read_bytes(), url, fetched_at=expected.get("fetched_at"))


def test_there_are_enough_cases():
    assert len(CASES) >= 20
    for path in CASES:
        assert (PAGES / f"{path.stem}.expected.json").exists(), path.name


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_regression_page(path: Path):
    expected = expected_for(path)
    record = run(path, expected)
    text = record["text"]
    if expected.get("is_article", True) is False:
        assert record.get("is_article") is False, "is_article"
        reason = record.get("not_article_reason")
        assert isinstance(reason, str) and reason.strip(), "not_article_reason"
    elif "max_chars" not in expected:
        assert record.get("is_article", True) is True, "is_article"
    for key in ("title", "origin", "editor", "author", "script"):
        if key in expected:
            assert record[key] == expected[key], key
    if "published_at" in expected:
        assert (record["published_at"] or "").startswith(expected["published_at"]), record["published_at"]
    for line in expected.get("must", []):
        assert line in text, f"missing: {line}"
    for phrase in expected.get("must_not", []):
        assert phrase not in text, f"should be gone: {phrase}"
    if "max_chars" in expected:
        assert len(text) <= expected["max_chars"]
    elif expected.get("is_article", True) is not False:
        # Every article case expects a body; an empty one would pass the must_not checks.
        assert expected.get("must"), "an article case needs at least one required line"
