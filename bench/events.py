"""Cooperation-event evaluation over our own labeled set (tests/events/).

Run from the repository root: ``python bench/events.py [--set tests/events] [--check]``.

The set is written by us (fictional details, real place names): `sentences.yaml`, single
sentences each read against an article date, and `articles/*.yaml`, short articles,
on-topic and off-topic, some reporting the same happening (reprints with one text, other
outlets' own reports, a traditional-script reprint). Each lists the events a careful
reader finds. Measured:

- per event type and overall, for sentences, articles and both: gold and predicted
  events, matched pairs, precision, recall; among matched pairs, date accuracy (date,
  date_precision and, when gold has one, date_end all equal; pairs whose gold date is
  null are not counted), amount accuracy (gold amount given: within 0.5% and the
  approximate flag equal) and planned accuracy;
- merging: `cyz.index.events.build_happenings` over the articles' records; purity (each
  happening's labeled mentions that carry its majority gold label) and completeness (for
  each gold happening label, the largest share of its mentions that ended up in one
  happening), both weighted by mentions;
- relevance ROC AUC of on-topic against off-topic articles (`record["relevance"]`), by
  Mann–Whitney (share of on/off pairs ranked right, ties count half).

Sentences go through `cyz.pipelines.events.extract_events("", to_simplified(text),
published_at)` with the item's day given as noon Beijing time; articles through
`cyz.pipelines.page.tag_record` on a record built from the YAML. Predicted events are
paired with gold ones within a sentence or article: same type, greedily by best date
agreement, then in order; an unpaired prediction is a false positive, an unpaired gold
event a false negative.

Targets: precision ≥ 0.90 and recall ≥ 0.85 overall (combined), relevance AUC ≥ 0.95,
merge purity ≥ 0.90. Exit status 0 (it is a report) unless ``--check``: then 1 when a
target is missed. 2 when the set is malformed or an API to evaluate is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import yaml

from cyz.record import EVENT_TYPES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SET = REPO / "tests" / "events"

TARGETS = {"precision": 0.90, "recall": 0.85, "auc": 0.95, "purity": 0.90}
AMOUNT_TOLERANCE = 0.005
PRECISIONS = ("day", "month", "year")
EVENT_KEYS = {"type", "date", "date_end", "date_precision", "planned", "parties",
              "amount_yuan", "amount_approx", "count", "happening", "note"}
SENTENCE_KEYS = {"text", "published_at", "events", "note"}
ARTICLE_KEYS = {"id", "source", "cluster", "on_topic", "title", "published_at", "text",
                "events"}


class MissingAPI(RuntimeError):
    """A function the evaluation calls does not exist (yet)."""


# ---------------------------------------------------------------- the labeled set

def load_set(root: Path = DEFAULT_SET) -> tuple[list[dict], list[dict]]:
    """The sentences (in file order) and the articles (by file name) of a labeled set."""
    root = Path(root)
    sentences = yaml.safe_load((root / "sentences.yaml").read_text(encoding="utf-8")) or []
    articles = []
    for path in sorted((root / "articles").glob("*.yaml")):
        article = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(article, dict):
            article.setdefault("_file", path.name)
        articles.append(article)
    return sentences, articles


def _parse_date(value: str, precision: str) -> date:
    if precision == "day":
        return date.fromisoformat(value)
    if precision == "month":
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(value)
        return date(int(year), int(month), 1)
    if len(value) != 4 or not value.isdigit():
        raise ValueError(value)
    return date(int(value), 1, 1)


def validate_event(event: object, *, article: bool = False) -> list[str]:
    """Problems of one gold event (empty when it is well-formed)."""
    if not isinstance(event, dict):
        return [f"an event must be a mapping, not {event!r}"]
    problems = []
    unknown = set(event) - EVENT_KEYS
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    if event.get("type") not in EVENT_TYPES:
        problems.append(f"type {event.get('type')!r} is not one of {EVENT_TYPES}")
    for key in ("date", "date_precision", "planned"):
        if key not in event:
            problems.append(f"missing {key}")
    when, precision = event.get("date"), event.get("date_precision")
    if (when is None) != (precision is None):
        problems.append("date and date_precision must both be given or both null")
    elif when is not None:
        if precision not in PRECISIONS:
            problems.append(f"date_precision {precision!r} is not one of {PRECISIONS}")
        else:
            try:
                start = _parse_date(str(when), precision)
            except ValueError:
                problems.append(f"date {when!r} is not an ISO {precision}")
                start = None
            end = event.get("date_end")
            if end is not None and start is not None:
                try:
                    if _parse_date(str(end), precision) < start:
                        problems.append(f"date_end {end!r} is before date {when!r}")
                except ValueError:
                    problems.append(f"date_end {end!r} is not an ISO {precision}")
    if event.get("date_end") is not None and when is None:
        problems.append("date_end without a date")
    if not isinstance(event.get("planned"), bool):
        problems.append("planned must be true or false")
    amount = event.get("amount_yuan")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)
                               or amount <= 0):
        problems.append(f"amount_yuan {amount!r} must be a positive number")
    if "amount_approx" in event and not isinstance(event["amount_approx"], bool):
        problems.append("amount_approx must be true or false")
    count = event.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        problems.append(f"count {count!r} must be an integer")
    parties = event.get("parties", [])
    if not isinstance(parties, list) or not all(isinstance(p, str) for p in parties):
        problems.append("parties must be a list of strings")
    if article and not (isinstance(event.get("happening"), str) and event["happening"]):
        problems.append("an article's event needs a happening label")
    if not article and "happening" in event:
        problems.append("happening labels belong to articles")
    return problems


def validate_set(sentences: list, articles: list) -> list[str]:
    """Every problem of a labeled set, each prefixed by where it is."""
    problems = []
    if not isinstance(sentences, list):
        return ["sentences.yaml must be a list"]
    for n, item in enumerate(sentences, 1):
        where = f"sentences.yaml item {n}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a mapping")
            continue
        if set(item) - SENTENCE_KEYS:
            problems.append(f"{where}: unknown keys {sorted(set(item) - SENTENCE_KEYS)}")
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            problems.append(f"{where}: no text")
        try:
            date.fromisoformat(str(item.get("published_at")))
        except ValueError:
            problems.append(f"{where}: published_at {item.get('published_at')!r} is not a day")
        if not isinstance(item.get("events"), list):
            problems.append(f"{where}: events must be a list")
            continue
        for event in item["events"]:
            problems += [f"{where}: {p}" for p in validate_event(event)]
    ids = Counter()
    for article in articles:
        if not isinstance(article, dict):
            problems.append(f"article {article!r}: not a mapping")
            continue
        where = f"articles/{article.get('_file', article.get('id'))}"
        unknown = set(article) - ARTICLE_KEYS - {"_file"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("id", "source", "title", "text"):
            if not isinstance(article.get(key), str) or not article[key].strip():
                problems.append(f"{where}: no {key}")
        ids[article.get("id")] += 1
        if not isinstance(article.get("on_topic"), bool):
            problems.append(f"{where}: on_topic must be true or false")
        try:
            stamp = datetime.fromisoformat(str(article.get("published_at")))
            if stamp.tzinfo is None:
                problems.append(f"{where}: published_at has no offset")
        except ValueError:
            problems.append(f"{where}: published_at {article.get('published_at')!r} is not ISO")
        events = article.get("events")
        if not isinstance(events, list):
            problems.append(f"{where}: events must be a list")
            continue
        for event in events:
            problems += [f"{where}: {p}" for p in validate_event(event, article=True)]
        labels = [e.get("happening") for e in events if isinstance(e, dict)]
        for label, n in Counter(labels).items():
            if n > 1:
                problems.append(f"{where}: happening {label!r} twice in one article "
                                "(the same happening told twice is one event)")
        if article.get("on_topic") is False and events:
            problems.append(f"{where}: an off-topic article with events")
    problems += [f"article id {i!r} used {n} times" for i, n in ids.items() if n > 1]
    return problems


def set_summary(sentences: list[dict], articles: list[dict]) -> dict:
    """Sizes of a labeled set: what the tests check and the report prints."""
    types = Counter()
    for item in [*sentences, *articles]:
        types.update(event["type"] for event in item["events"])
    sentence_types = Counter(e["type"] for item in sentences for e in item["events"])
    labels = defaultdict(set)
    for article in articles:
        for event in article["events"]:
            labels[event["happening"]].add(article["id"])
    return {
        "sentences": len(sentences),
        "no_event_sentences": sum(1 for item in sentences if not item["events"]),
        "articles": len(articles),
        "on_topic": sum(1 for a in articles if a["on_topic"]),
        "off_topic": sum(1 for a in articles if not a["on_topic"]),
        "events": dict(types),
        "sentence_events": dict(sentence_types),
        "happenings": len(labels),
        "shared_happenings": sum(1 for ids in labels.values() if len(ids) >= 2),
    }


# ---------------------------------------------------------------- matching and scoring

def date_correct(pred: dict, gold: dict) -> bool:
    """Date, its precision and (when gold has one) the range's end all equal."""
    if pred.get("date") != gold.get("date") or pred.get("date_precision") != gold.get(
            "date_precision"):
        return False
    return gold.get("date_end") is None or pred.get("date_end") == gold.get("date_end")


def amount_correct(pred: dict, gold: dict) -> bool:
    """Within 0.5% of the gold amount, with the same approximate flag."""
    want, got = gold.get("amount_yuan"), pred.get("amount_yuan")
    if want is None:
        return got is None
    if got is None:
        return False
    return (abs(float(got) - float(want)) <= AMOUNT_TOLERANCE * float(want)
            and bool(pred.get("amount_approx")) == bool(gold.get("amount_approx")))


def date_agreement(pred: dict, gold: dict) -> int:
    """3 exact date (as date_correct), 2 same date string, 1 one date a prefix of the other
    (2024-07 and 2024-07-18), 0 otherwise. Two null dates agree exactly."""
    if date_correct(pred, gold):
        return 3
    a, b = pred.get("date"), gold.get("date")
    if a is None or b is None:
        return 0
    a, b = str(a), str(b)
    if a == b:
        return 2
    return 1 if a.startswith(b) or b.startswith(a) else 0


def match_events(pred: list[dict], gold: list[dict]) -> list[tuple[int, int]]:
    """(pred index, gold index) pairs: same type, greedily by best date agreement, ties by
    order (earliest gold, then earliest prediction)."""
    candidates = []
    for gi, g in enumerate(gold):
        for pi, p in enumerate(pred):
            if p.get("type") == g.get("type"):
                candidates.append((-date_agreement(p, g), gi, pi))
    candidates.sort()
    used_pred, used_gold, pairs = set(), set(), []
    for _, gi, pi in candidates:
        if gi in used_gold or pi in used_pred:
            continue
        used_gold.add(gi)
        used_pred.add(pi)
        pairs.append((pi, gi))
    return sorted(pairs, key=lambda pair: pair[1])


def _empty_tally() -> dict:
    return {"gold": 0, "pred": 0, "matched": 0, "date_n": 0, "date_ok": 0,
            "amount_n": 0, "amount_ok": 0, "planned_ok": 0}


def tally(items: Iterable[tuple[list[dict], list[dict]]]) -> dict[str, dict]:
    """Counts per type and under "all" over (predicted, gold) event lists, one pair per
    sentence or article."""
    counts: dict[str, dict] = defaultdict(_empty_tally)
    for pred, gold in items:
        for event in gold:
            for key in (event["type"], "all"):
                counts[key]["gold"] += 1
        for event in pred:
            for key in (event.get("type"), "all"):
                counts[key]["pred"] += 1
        for pi, gi in match_events(pred, gold):
            p, g = pred[pi], gold[gi]
            for key in (g["type"], "all"):
                row = counts[key]
                row["matched"] += 1
                row["planned_ok"] += bool(p.get("planned")) == bool(g.get("planned"))
                if g.get("date") is not None:
                    row["date_n"] += 1
                    row["date_ok"] += date_correct(p, g)
                if g.get("amount_yuan") is not None:
                    row["amount_n"] += 1
                    row["amount_ok"] += amount_correct(p, g)
    return dict(counts)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def rates(row: dict) -> dict:
    """Precision, recall and the accuracies of one tally row (None where undefined)."""
    return {
        "precision": _ratio(row["matched"], row["pred"]),
        "recall": _ratio(row["matched"], row["gold"]),
        "date": _ratio(row["date_ok"], row["date_n"]),
        "amount": _ratio(row["amount_ok"], row["amount_n"]),
        "planned": _ratio(row["planned_ok"], row["matched"]),
    }


def roc_auc(positive: Iterable[float], negative: Iterable[float]) -> float | None:
    """Share of (positive, negative) pairs where the positive scores higher; ties half."""
    pos, neg = list(positive), list(negative)
    if not pos or not neg:
        return None
    right = 0.0
    for p in pos:
        for n in neg:
            right += 1.0 if p > n else 0.5 if p == n else 0.0
    return right / (len(pos) * len(neg))


def merge_scores(happenings: Iterable[dict], labels: dict[tuple[str, int], str]) -> dict:
    """Purity and completeness of happenings against gold labels.

    `labels` maps (article id, event index) of each predicted event that was matched to a
    gold event to that event's `happening` label. Purity: labeled mentions that carry
    their happening's majority label / all labeled mentions in happenings. Completeness:
    for each label, the most of its mentions found in one happening, summed / all labeled
    mentions (a mention left out of every happening counts against it)."""
    in_happening = 0
    majority = 0
    best: dict[str, int] = defaultdict(int)
    for happening in happenings:
        found = Counter()
        for report in happening.get("reports", []):
            label = labels.get((report.get("article_id"), report.get("event_index", 0)))
            if label is not None:
                found[label] += 1
        if not found:
            continue
        in_happening += sum(found.values())
        majority += max(found.values())
        for label, n in found.items():
            best[label] = max(best[label], n)
    total = Counter(labels.values())
    return {
        "purity": _ratio(majority, in_happening),
        "completeness": _ratio(sum(best.values()), sum(total.values())),
        "labeled_mentions": sum(total.values()),
        "gold_labels": len(total),
    }


# ---------------------------------------------------------------- running the pipeline

def _import(module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MissingAPI(f"cannot evaluate: {module}.{name} is missing ({exc})") from exc


def sentence_published_at(day: str) -> str:
    """The article day of a sentence as a timestamp: noon Beijing time, so no time-zone
    conversion moves it to another day."""
    return f"{day}T12:00:00+08:00"


def predict_sentences(sentences: list[dict]) -> list[list[dict]]:
    extract_events = _import("cyz.pipelines.events", "extract_events")
    to_simplified = _import("cyz.pipelines.script", "to_simplified")
    return [list(extract_events("", to_simplified(item["text"]),
                                sentence_published_at(str(item["published_at"]))))
            for item in sentences]


def article_record(article: dict) -> dict:
    """The record an article of the set stands for, before tagging."""
    from cyz.pipelines.script import to_simplified

    source = article["source"]
    source_id = "src-" + hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return {
        "id": hashlib.sha1(article["id"].encode("utf-8")).hexdigest()[:20],
        "url": f"https://{source_id}.example.cn/{article['id']}.html",
        "source_id": source_id,
        "source_name": source,
        "origin": source,
        "title": article["title"],
        "text": article["text"],
        "title_zh": to_simplified(article["title"]),
        "text_zh": to_simplified(article["text"]),
        "published_at": str(article["published_at"]),
        "cluster_id": article.get("cluster") or None,
    }


def predict_articles(articles: list[dict]) -> list[dict]:
    tag_record = _import("cyz.pipelines.page", "tag_record")
    records = []
    for article in articles:
        record = article_record(article)
        tagged = tag_record(record)
        records.append(tagged if tagged is not None else record)
    return records


def _plain(event) -> dict:
    return event.model_dump() if hasattr(event, "model_dump") else dict(event)


def evaluate(root: Path = DEFAULT_SET, *, merge: bool = True) -> dict:
    """Run the pipeline over the set and score it; raises MissingAPI when an API is
    missing and ValueError when the set is malformed."""
    sentences, articles = load_set(root)
    problems = validate_set(sentences, articles)
    if problems:
        raise ValueError("malformed labeled set:\n  " + "\n  ".join(problems))

    sentence_pred = [[_plain(e) for e in events] for events in predict_sentences(sentences)]
    records = predict_articles(articles)
    article_pred = [[_plain(e) for e in record.get("events") or []] for record in records]

    sentence_items = [(p, item["events"]) for p, item in zip(sentence_pred, sentences,
                                                              strict=True)]
    article_items = [(p, a["events"]) for p, a in zip(article_pred, articles, strict=True)]
    report = {
        "summary": set_summary(sentences, articles),
        "sentences": tally(sentence_items),
        "articles": tally(article_items),
        "combined": tally([*sentence_items, *article_items]),
        "auc": roc_auc([float(r.get("relevance") or 0.0) for r, a in zip(records, articles,
                                                                        strict=True)
                        if a["on_topic"]],
                       [float(r.get("relevance") or 0.0) for r, a in zip(records, articles,
                                                                        strict=True)
                        if not a["on_topic"]]),
        "relevance": {a["id"]: r.get("relevance") for r, a in zip(records, articles,
                                                                   strict=True)},
    }

    labels: dict[tuple[str, int], str] = {}
    for record, pred, article in zip(records, article_pred, articles, strict=True):
        for pi, gi in match_events(pred, article["events"]):
            labels[(record["id"], pi)] = article["events"][gi]["happening"]
    report["merge"] = {"happenings": None, "purity": None, "completeness": None,
                       "gold_labels": report["summary"]["happenings"],
                       "predicted_mentions": sum(map(len, article_pred))}
    if merge:
        build_happenings = _import("cyz.index.events", "build_happenings")
        happenings = [_plain(h) for h in build_happenings(records)]
        for h in happenings:
            h["reports"] = [_plain(r) for r in h.get("reports", [])]
        scores = merge_scores(happenings, labels)
        report["merge"].update(happenings=len(happenings), purity=scores["purity"],
                               completeness=scores["completeness"],
                               labeled_mentions=scores["labeled_mentions"],
                               matched_labels=scores["gold_labels"])
    return report


def misses(report: dict) -> list[str]:
    """The targets a report misses, as readable lines."""
    overall = rates(report["combined"].get("all", _empty_tally()))
    out = []
    for name, value in (("precision", overall["precision"]), ("recall", overall["recall"]),
                        ("auc", report["auc"]), ("purity", report["merge"]["purity"])):
        if value is None or value < TARGETS[name]:
            shown = "n/a" if value is None else f"{value:.3f}"
            out.append(f"{name} {shown} < {TARGETS[name]:.2f}")
    return out


# ---------------------------------------------------------------- printing

def _fmt(value: float | None, n: int | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if n is None else f"{value:.3f} ({n})"


def format_table(title: str, counts: dict[str, dict], *, targets: bool = False) -> str:
    lines = [f"### {title}", "",
             "| type | gold | pred | matched | precision | recall | date acc (n) "
             "| amount acc (n) | planned acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in [*EVENT_TYPES, "all"]:
        row = counts.get(key)
        if row is None:
            continue
        r = rates(row)
        precision, recall = _fmt(r["precision"]), _fmt(r["recall"])
        if key == "all" and targets:
            precision += f" (≥ {TARGETS['precision']:.2f})"
            recall += f" (≥ {TARGETS['recall']:.2f})"
        name = f"**{key}**" if key == "all" else key
        lines.append(f"| {name} | {row['gold']} | {row['pred']} | {row['matched']} | "
                     f"{precision} | {recall} | {_fmt(r['date'], row['date_n'])} | "
                     f"{_fmt(r['amount'], row['amount_n'])} | {_fmt(r['planned'])} |")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    types = ", ".join(f"{t} {summary['events'].get(t, 0)}" for t in EVENT_TYPES)
    return (f"Set: {summary['sentences']} sentences ({summary['no_event_sentences']} without "
            f"an event), {summary['articles']} articles ({summary['on_topic']} on-topic, "
            f"{summary['off_topic']} off-topic); gold events {types}; "
            f"{summary['happenings']} gold happenings, {summary['shared_happenings']} "
            "told by two articles or more.")


def format_report(report: dict) -> str:
    merge = report["merge"]
    parts = [
        format_summary(report["summary"]), "",
        format_table("Sentences", report["sentences"]), "",
        format_table("Articles (title + text)", report["articles"]), "",
        format_table("Combined", report["combined"], targets=True), "",
        "### Merging and relevance", "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| happenings built / distinct gold labels | {merge['happenings']} / "
        f"{merge['gold_labels']} | |",
        f"| merge purity | {_fmt(merge['purity'])} | ≥ {TARGETS['purity']:.2f} |",
        f"| merge completeness | {_fmt(merge['completeness'])} | |",
        f"| relevance ROC AUC (on- vs off-topic articles) | {_fmt(report['auc'])} "
        f"| ≥ {TARGETS['auc']:.2f} |",
    ]
    missed = misses(report)
    parts += ["", "Targets: " + ("all met." if not missed else "missed — " + "; ".join(missed))]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET,
                        help="the labeled set's folder (default tests/events)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also list every relevance score")
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.set)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MissingAPI as exc:
        print(format_summary(set_summary(*load_set(args.set))))
        print(exc, file=sys.stderr)
        return 2
    print(format_report(report))
    if args.verbose:
        for article_id, relevance in report["relevance"].items():
            print(f"{article_id}\t{relevance}", file=sys.stderr)
    return 1 if args.check and misses(report) else 0


if __name__ == "__main__":
    sys.exit(main())
