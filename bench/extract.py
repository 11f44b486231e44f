"""Extraction benchmark over ../shared/realpages (gold body text + metadata).

Run from the repository root: ``python bench/extract.py [-v]``. Prints a markdown
table with cyz and trafilatura's defaults measured in the same run, plus
readability-lxml and GNE rows when those packages are importable and a news-please
row when its separate virtualenv exists (``NEWSPLEASE_PYTHON``, default /tmp/np-venv).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REALPAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "realpages"
WS = re.compile(r"\s+")


def nospace(text: str | None) -> str:
    return WS.sub("", text or "")


def bigrams(text: str) -> Counter:
    key = nospace(text)
    return Counter(key[i:i + 2] for i in range(len(key) - 1))


def prf(pred: str, gold: str) -> tuple[float, float, float]:
    """Character-bigram multiset precision, recall, F1 (whitespace removed)."""
    p, g = bigrams(pred), bigrams(gold)
    common = sum((p & g).values())
    precision = common / sum(p.values()) if p else 0.0
    recall = common / sum(g.values()) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def same_day(pred: str | None, gold: str | None) -> bool:
    if gold is None:
        return pred is None
    return bool(pred) and pred[:10] == gold[:10]


def p10(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    # Nearest-rank 10th percentile: the page at the 10% mark of the worst-first order.
    index = max(0, int(round(0.1 * len(ordered) + 0.5)) - 1)
    return ordered[index]


def load_pages(root: Path = REALPAGES) -> list[dict]:
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    pages = []
    for name in sorted(meta):
        html_path = root / "html" / name
        gold_path = root / "gold" / (Path(name).stem + ".txt")
        if not html_path.exists() or not gold_path.exists():
            continue
        pages.append({
            "name": name,
            "body": html_path.read_bytes(),
            "gold": gold_path.read_text(encoding="utf-8"),
            **meta[name],
        })
    return pages


# Each extractor maps (html text, raw bytes) -> dict(text, title, date, origin); a missing
# key means the tool does not report that field.
Extractor = Callable[[str, bytes], dict]


def cyz_extractor(html: str, body: bytes) -> dict:
    from cyz.pipelines.decode import decode_html
    from cyz.pipelines.extract import extract_html

    text, _ = decode_html(body)
    result = extract_html(text)
    return {"text": result.text, "title": result.title, "date": result.published_at,
            "origin": result.origin}


def trafilatura_extractor(html: str, body: bytes) -> dict:
    import trafilatura

    doc = trafilatura.bare_extraction(html, with_metadata=True)
    if doc is None:
        return {"text": "", "title": None, "date": None}
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    return {"text": data.get("text") or "", "title": data.get("title"), "date": data.get("date")}


def readability_extractor(html: str, body: bytes) -> dict:
    import lxml.html
    from readability import Document

    doc = Document(html)
    summary = lxml.html.fromstring(doc.summary())
    return {"text": summary.text_content(), "title": doc.short_title()}


def gne_extractor(html: str, body: bytes) -> dict:
    from gne import GeneralNewsExtractor

    data = GeneralNewsExtractor().extract(html)
    return {"text": data.get("content") or "", "title": data.get("title"),
            "date": data.get("publish_time") or None}


# news-please pins packages of its own (newspaper4k, boto3, psycopg2, ...), so it lives
# in a separate virtualenv and is called once for all pages through a subprocess.
NEWSPLEASE_PYTHON = Path(os.environ.get("NEWSPLEASE_PYTHON", "/tmp/np-venv/bin/python"))
_NEWSPLEASE_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from newsplease import NewsPlease
out = []
for html in json.load(sys.stdin):
    try:
        art = NewsPlease.from_html(html, url=None, fetch_images=False)
        date = art.date_publish.isoformat() if art.date_publish else None
        out.append({"text": art.maintext or "", "title": art.title, "date": date})
    except Exception as exc:
        out.append({"text": "", "title": None, "date": None, "error": repr(exc)})
json.dump(out, sys.stdout)
"""


def newsplease_available() -> bool:
    if not NEWSPLEASE_PYTHON.exists():
        return False
    probe = subprocess.run([str(NEWSPLEASE_PYTHON), "-c", "import newsplease"],
                           capture_output=True, timeout=120)
    return probe.returncode == 0


class NewsPleaseBatch:
    """Runs news-please over every page in one subprocess on the first call."""

    def __init__(self, pages: list[dict]):
        self.pages = pages
        self.results: dict[str, dict] | None = None

    def __call__(self, html: str, body: bytes) -> dict:
        if self.results is None:
            from cyz.pipelines.decode import decode_html

            htmls = [decode_html(p["body"])[0] for p in self.pages]
            done = subprocess.run([str(NEWSPLEASE_PYTHON), "-c", _NEWSPLEASE_SCRIPT],
                                  input=json.dumps(htmls), capture_output=True, text=True,
                                  timeout=600)
            outs = json.loads(done.stdout) if done.returncode == 0 else [{"text": ""}] * len(htmls)
            self.results = dict(zip(htmls, outs, strict=True))
        return self.results.get(html, {"text": "", "title": None, "date": None})


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def evaluate(name: str, extractor: Extractor, pages: list[dict], verbose: bool = False) -> dict:
    from cyz.pipelines.decode import decode_html

    rows = []
    started = time.perf_counter()
    for page in pages:
        html, _ = decode_html(page["body"])
        try:
            out = extractor(html, page["body"])
        except Exception as exc:  # a tool crashing on a page scores zero there
            out = {"text": "", "error": repr(exc)}
        precision, recall, f1 = prf(out.get("text") or "", page["gold"])
        row = {"page": page["name"], "p": precision, "r": recall, "f1": f1}
        if "title" in out:
            row["title"] = nospace(out["title"]) == nospace(page["title"])
        if "date" in out:
            date = out["date"]
            row["date"] = same_day(str(date) if date else None, page["published"])
        if "origin" in out:
            row["origin"] = (out["origin"] or None) == page["source"]
        rows.append(row)
        if verbose:
            print(f"{name:12} {page['name']:26} P={precision:.3f} R={recall:.3f} F1={f1:.3f} "
                  f"title={row.get('title')} date={row.get('date')}:{out.get('date')} "
                  f"origin={row.get('origin')}:{out.get('origin')}", file=sys.stderr)
    return _summarize(name, rows, time.perf_counter() - started)


def site_of(page_name: str) -> str:
    """`163__1.html` → `163`: the pages of one site share the prefix."""
    return page_name.split("__", 1)[0]


_SCORED = ("f1", "title", "date", "origin")


def _by_page(result: dict) -> dict[str, dict]:
    return {row["page"]: row for row in result["rows"]}


def leave_one_site_out(pages: list[dict], in_sample: dict) -> tuple[dict, dict[str, set[str]]]:
    """cyz scored on each site's pages with the rules only that site motivated switched off.

    A rule (see cyz.pipelines.rules) "helps" a site when switching it off lowers a score
    (body F1, title, date, origin) on one of the site's pages. Holding out site S, every
    rule that helps S and no other site is switched off: what S's pages get is what the
    rules the other sites motivated give a site never seen. Rules that change no real
    page alone (written for our regression pages, or backing another rule up) stay on.
    """
    from cyz.pipelines.rules import RULES, without

    base = _by_page(in_sample)
    helps: dict[str, set[str]] = {}
    for rule in RULES:
        with without([rule]):
            off = _by_page(evaluate(f"cyz -{rule}", cyz_extractor, pages))
        helps[rule] = {site_of(name) for name, row in off.items()
                       if any(row.get(k, 0) < base[name].get(k, 0) - 1e-9 for k in _SCORED)}
    rows = []
    seconds = 0.0
    for site in sorted({site_of(p["name"]) for p in pages}):
        alone = [rule for rule, sites in helps.items() if sites == {site}]
        held_out = [p for p in pages if site_of(p["name"]) == site]
        with without(alone):
            result = evaluate("cyz", cyz_extractor, held_out)
        rows += result["rows"]
        seconds += result["seconds"]
    return _summarize("cyz, leave-one-site-out", rows, seconds), helps


def _summarize(name: str, rows: list[dict], seconds: float) -> dict:
    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if key in r]
        return sum(values) / len(values) if values else None

    return {
        "name": name, "rows": rows, "seconds": seconds,
        "P": mean("p"), "R": mean("r"), "F1": mean("f1"),
        "F1 p10": p10([r["f1"] for r in rows]),
        "title": mean("title"), "date": mean("date"), "origin": mean("origin"),
    }


def table(results: list[dict], pages: int) -> str:
    cols = ["P", "R", "F1", "F1 p10", "title", "date", "origin"]
    lines = [
        f"Extraction on {pages} real pages (character-bigram P/R/F1, macro average)",
        "",
        "| extractor | " + " | ".join(cols) + " | s/page |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for res in results:
        cells = ["–" if res[c] is None else f"{res[c]:.3f}" for c in cols]
        lines.append(f"| {res['name']} | " + " | ".join(cells) + f" | {res['seconds'] / pages:.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    if not (REALPAGES / "meta.json").exists():
        print(f"skipped: no real pages at {REALPAGES.resolve()} (../shared/realpages beside the repo)")
        return 0
    pages = load_pages()
    extractors: list[tuple[str, Extractor]] = [
        ("cyz", cyz_extractor),
        ("trafilatura", trafilatura_extractor),
    ]
    if _importable("readability"):
        extractors.append(("readability-lxml", readability_extractor))
    else:
        print("note: readability-lxml not installed, row skipped", file=sys.stderr)
    if _importable("gne"):
        extractors.append(("GNE", gne_extractor))
    else:
        print("note: gne not installed, row skipped", file=sys.stderr)
    if newsplease_available():
        extractors.append(("news-please", NewsPleaseBatch(pages)))
    else:
        print(f"note: news-please not found at {NEWSPLEASE_PYTHON} (python -m venv /tmp/np-venv && "
              "/tmp/np-venv/bin/pip install news-please), row skipped", file=sys.stderr)
    results = [evaluate(name, fn, pages, verbose) for name, fn in extractors]
    held_out, helps = leave_one_site_out(pages, results[0])
    results.insert(1, held_out)
    print(table(results, len(pages)))
    single = {rule: sorted(sites) for rule, sites in helps.items() if len(sites) == 1}
    unused = sorted(rule for rule, sites in helps.items() if not sites)
    print()
    print(f"Leave-one-site-out: {len({site_of(p['name']) for p in pages})} sites; rules that "
          f"help one site only (off for that site): "
          + (", ".join(f"{rule} ({sites[0]})" for rule, sites in sorted(single.items())) or "none")
          + f"; rules that change no real page on their own (kept on): {len(unused)} of {len(helps)}.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
