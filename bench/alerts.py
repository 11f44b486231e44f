"""Alert rules over freshly indexed articles: matched, rendered and delivered.

    python bench/alerts.py [--articles 10000] [--rules 100] [--opensearch-url http://127.0.0.1:9201]

Generates N synthetic Chinese articles (bench/index.py's generator, deterministic for a
seed), writes them into each engine, then times one `run_alerts` with R generated rules
(keywords, filters, event types; one in five a digest) delivering into a Maildir: the
whole path a nightly alerts run takes (read what is new, match, record the hits, render
the mails, queue and deliver them). Also times the read and the match alone. Prints
one markdown table. Target: 100 rules over 10,000 new articles in < 10 s.

The OpenSearch indices get a unique prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

from cyz.alerts import run_alerts
from cyz.alerts.mail import MaildirTransport
from cyz.alerts.match import Matcher
from cyz.config import AlertRule, load_config
from cyz.index import open_engine
from cyz.index.base import Filters
from cyz.settings import load_settings

HERE = Path(__file__).resolve().parent
# bench/ first on sys.path would let bench/events.py shadow opensearch-py's `events`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_index", HERE / "index.py")
bench_index = importlib.util.module_from_spec(_spec)
sys.modules["bench_index"] = bench_index  # its dataclasses look themselves up there
_spec.loader.exec_module(bench_index)

TARGET_S = 10.0
WORDS = ["合作", "签约", "协议", "项目", "投资", "共建", "产业", "园区", "高铁", "物流", "旅游",
         "白酒", "数字经济", "装备制造", "茶产业", "协同", "一体化", "对接", "考察", "招商"]
CITIES = ["遵义", "重庆", "成都", "汇川区", "江北区", "双流区", "仁怀市", "永川区", "渝北区"]
EVENTS = ["agreement", "visit", "project", "conference", "policy", "transport"]


def make_rules(n: int, seed: int) -> list[AlertRule]:
    rng = random.Random(seed)
    rules = []
    for i in range(n):
        fields: dict = {"id": f"bench-{i}", "name": f"规则{i}",
                        "recipients": [f"office{i % 7}@bench.invalid"],
                        "all": [rng.choice(CITIES)], "any": rng.sample(WORDS, rng.randint(2, 4))}
        if rng.random() < 0.3:
            fields["none"] = rng.sample(WORDS, 1)
        if rng.random() < 0.3:
            fields["event_types"] = rng.sample(EVENTS, rng.randint(1, 2))
        if rng.random() < 0.2:
            fields["regions"] = [rng.choice(["遵义", "重庆", "成都"])]
        if rng.random() < 0.2:
            fields["min_relevance"] = 0.3
        if rng.random() < 0.2:
            fields["mode"], fields["digest_at"] = "digest", "08:00"
        rules.append(AlertRule(**fields))
    return rules


def measure(engine_name: str, data_dir: Path, records: list[dict], rules: list[AlertRule],
            config) -> dict:
    engine = open_engine(engine_name, data_dir)
    try:
        engine.init()
        for batch in bench_index.batches(iter(records)):
            engine.write(batch)
        engine.refresh()
        started = time.perf_counter()
        read = list(engine.iter_records(Filters(indexed_since="2000-01-01T00:00:00+00:00")))
        read_s = time.perf_counter() - started
    finally:
        engine.close()
    started = time.perf_counter()
    matched = Matcher(rules).match(read)
    match_s = time.perf_counter() - started
    started = time.perf_counter()
    result = run_alerts(config, data_dir, engine=engine_name, rules=rules,
                        transport=MaildirTransport(data_dir / "mail"), settings=load_settings())
    run_s = time.perf_counter() - started
    assert not result.errors, result.errors
    return {"engine": engine_name, "articles": len(read), "read_s": read_s, "match_s": match_s,
            "run_s": run_s, "hits": result.hits, "mails": result.sent,
            "matched": sum(len(v) for v in matched.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--opensearch-url", default=os.environ.get("CYZ_OPENSEARCH_URL"))
    args = parser.parse_args(argv)

    config = load_config(Path(__file__).resolve().parents[1] / "config")
    rules = make_rules(args.rules, args.seed)
    started = time.perf_counter()
    records = list(bench_index.generate(args.articles, args.seed))
    print(f"generated {len(records)} articles in {time.perf_counter() - started:.1f} s; "
          f"{len(rules)} rules", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cyz-bench-alerts-") as tmp:
        rows.append(measure("sqlite", Path(tmp) / "sqlite", records, rules, config))
        why_not = args.opensearch_url and bench_index.reachable(args.opensearch_url)
        if args.opensearch_url and not why_not:
            prefix = f"cyzbench{secrets.token_hex(3)}"
            os.environ.update({"CYZ_OPENSEARCH_URL": args.opensearch_url,
                               "CYZ_INDEX_PREFIX": prefix})
            try:
                rows.append(measure("opensearch", Path(tmp) / "os", records, rules, config))
            finally:
                bench_index.drop_prefix(args.opensearch_url, prefix)
    print(f"\n{args.rules} rules over {args.articles} new articles (target: whole run < "
          f"{TARGET_S:.0f} s)\n")
    print("| engine | articles | matches | hits | mails | read s | match s | whole run s | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ok = "met" if r["run_s"] < TARGET_S else "MISSED"
        print(f"| {r['engine']} | {r['articles']} | {r['matched']} | {r['hits']} | {r['mails']} | "
              f"{r['read_s']:.2f} | {r['match_s']:.2f} | {r['run_s']:.2f} | {ok} |")
    if not args.opensearch_url:
        print("\n(OpenSearch not measured: pass --opensearch-url or set CYZ_OPENSEARCH_URL)")
    elif why_not:
        print(f"\n(OpenSearch not measured: {why_not})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
