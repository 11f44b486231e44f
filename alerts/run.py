"""One alerts run: match the rules, queue their mails in the outbox, send what is queued.

A rule sees the articles indexed since its last run (`indexed_at`, stamped by the
engine when it writes a record: first indexed, changed by a re-crawl or a
re-extraction, or replayed from the spool after an outage), never by publication date.
The outbox (`outbox.py`) makes each (rule, article) mail once, whatever is re-run.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email import policy
from pathlib import Path

from cyz.alerts.mail import MaildirTransport, MailError, ServerDown, SmtpTransport
from cyz.alerts.match import Matcher
from cyz.alerts.outbox import HEALTH_RULE, Outbox, RuleState
from cyz.alerts.render import (
    FULL_STORIES,
    add_details,
    compose,
    compose_health,
    hit_of,
    stories,
)
from cyz.config import AlertRule, Config
from cyz.record import SHANGHAI
from cyz.settings import Settings, SettingsError

# A rule looks this far behind its last run: a record stamped just before the run but
# made searchable just after (an engine's refresh) is still seen; the outbox drops the
# ones seen already.
OVERLAP = timedelta(minutes=10)
# A rule's first run (a new rule, or a first `cyz alerts run`) sends what the last day
# brought, not the whole archive; `cyz alerts test --since` shows older matches.
FIRST_LOOKBACK = timedelta(days=1)

Transport = SmtpTransport | MaildirTransport


@dataclass
class AlertsRun:
    sent: int = 0  # mails handed to the mail server (or the Maildir) this run
    queued: int = 0  # mails waiting in the outbox after the run (an SMTP outage)
    hits: int = 0  # new (rule, article) matches recorded this run
    errors: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | partial | failed, as the run history records it
    # {rule id: the hits (`render.hit_of`) new to it}; what --dry-run shows
    matches: dict[str, list[dict]] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)  # the mails queued this run
    transport: str = ""

    def as_dict(self) -> dict:
        return {"status": self.status, "hits": self.hits, "sent": self.sent,
                "queued": self.queued, "subjects": self.subjects, "errors": self.errors,
                "matches": {rule: [{k: h[k] for k in ("id", "title", "url", "source_id",
                                                       "published_at", "story")} for h in hits]
                            for rule, hits in self.matches.items()}}


def digest_times(config: Config) -> list[time]:
    """The distinct `digest_at` times (Asia/Shanghai) of the enabled digest rules."""
    return sorted({r.digest_time for r in config.alerts if r.enabled and r.mode == "digest"})


def check_ready(config: Config, settings: Settings) -> None:
    """Raise SettingsError when enabled rules (or CYZ_OPERATOR_EMAIL) need mail settings
    that are not set: `cyz schedule` and `cyz alerts run` check it before any work."""
    needs = [f"{len([r for r in config.alerts if r.enabled])} enabled rule(s) in "
             f"{config.alerts_file}"] if any(r.enabled for r in config.alerts) else []
    if settings.operator_email:
        needs.append("CYZ_OPERATOR_EMAIL")
    if not needs:
        return
    missing = [name for name, value in (("CYZ_SMTP_HOST", settings.smtp_host),
                                         ("CYZ_MAIL_FROM", settings.mail_from)) if not value]
    if missing:
        raise SettingsError("\n".join(f"{name}: not set, and {' and '.join(needs)} send mail"
                                      for name in missing))


def run_alerts(config: Config, data_dir: Path, *, engine: str | None = None,
               now: datetime | None = None, dry_run: bool = False,
               transport: Transport | None = None, settings: Settings | None = None,
               rules: list[AlertRule] | None = None) -> AlertsRun:
    """Match every enabled rule against the articles new to it, queue the mails that are
    due (immediate rules now, digests at their time), then send everything queued —
    this run's and what an earlier SMTP outage left. `transport` defaults to SMTP from
    the `CYZ_SMTP_*` settings. Never raises for an engine or mail outage: the run's
    `status` and `errors` say what happened, and it is recorded in the run history
    (kind "alerts") unless `dry_run`, which writes and sends nothing."""
    from cyz.runs import now as stamp
    from cyz.runs import record_quietly
    from cyz.settings import load_settings

    started = stamp()
    now = now or datetime.now(UTC)
    settings = settings or load_settings()
    rules = [r for r in (config.alerts if rules is None else rules) if r.enabled]
    result = AlertsRun()
    # A dry run needs no mail server; a run without rules still sends what is queued.
    if transport is None and not dry_run and (rules or settings.smtp_host):
        try:
            transport = SmtpTransport(settings)
        except MailError as exc:
            result.errors.append(str(exc))
            result.status = "failed"
    if result.status != "failed":
        result.transport = transport.describe() if transport else ""
        with Outbox(data_dir) as outbox, (nullcontext() if dry_run else outbox.exclusive()):
            if rules:
                _match(rules, outbox, data_dir, engine, now, transport, result, dry_run)
            if settings.operator_email and transport is not None and not dry_run:
                _health_mail(config, data_dir, engine, settings, outbox, transport, now, result)
            if not dry_run and transport is not None:
                _send(outbox, transport, result)
            result.queued = outbox.counts()["queued"]
        if result.errors and result.status == "ok":
            result.status = "partial" if result.sent or not result.queued else "failed"
    if not dry_run:
        record_quietly(data_dir, "alerts", started, result.status, alerts_sent=result.sent,
                       errors=result.errors)
    return result


def _match(rules: list[AlertRule], outbox: Outbox, data_dir: Path, engine_name: str | None,
           now: datetime, transport: Transport | None, result: AlertsRun, dry_run: bool) -> None:
    from cyz.index import open_engine
    from cyz.index.base import Filters, indexed_now
    from cyz.index.search_engine import EngineUnavailable
    from cyz.runs import now as stamp
    from cyz.storage import StorageError

    # Stamped before reading: anything indexed from here on is the next run's.
    seen_until = indexed_now()
    states = {r.id: outbox.rule_state(r.id) for r in rules}
    since = {rule_id: _reads_from(s, seen_until) for rule_id, s in states.items()}
    engine = open_engine(engine_name, data_dir)
    try:
        # Replays the spool first (search engines), so records of an outage alert now.
        engine.ensure_ready()
        engine.refresh()
        records = [r for r in engine.iter_records(Filters(indexed_since=min(since.values())))
                   if not r.get("gone_at")]
    except (EngineUnavailable, StorageError) as exc:
        result.errors.append(f"alerts wait for the index: {exc}")
        result.status = "failed"
        return
    finally:
        engine.close()

    matcher = Matcher(rules)
    # {rule id: {article id: (record, its folded text)}}: the articles new to the rule
    fresh: dict[str, dict[str, tuple[dict, str]]] = {rule.id: {} for rule in rules}
    for record in records:
        taken, folded = matcher.rules_for(record)
        for rule in taken:
            if (record.get("indexed_at") or "") >= since[rule.id]:
                fresh[rule.id][record["id"]] = (record, folded)
    del records
    found_at = stamp()
    for rule in rules:
        known = outbox.known(rule.id, list(fresh[rule.id]))
        new = {a: pair for a, pair in fresh[rule.id].items() if a not in known}
        # Snippets and events cost: a digest's hits keep theirs (the article is not at
        # hand by digest time); an immediate mail makes them for the stories it shows.
        digest = rule.mode == "digest"
        hits = [hit_of(r, rule, matcher.terms(rule), f, details=digest or dry_run)
                for r, f in new.values()]
        result.matches[rule.id] = hits
        if dry_run:
            continue
        due = not digest or _digest_due(rule, states[rule.id].last_digest_at, now)
        if due and transport is not None:
            result.hits += _mail(rule, outbox, hits, new, matcher, now, transport, result,
                                 found_at=found_at, seen_until=seen_until)
        else:
            first = digest and states[rule.id].last_digest_at is None
            result.hits += outbox.settle(rule.id, found_at=found_at, new_hits=hits,
                                         seen_until=seen_until,
                                         digest_at=now.isoformat(timespec="seconds") if first else None)


def _reads_from(state: RuleState, now_stamp: str) -> str:
    """The `indexed_at` a rule's run reads from: OVERLAP before where its last run
    stopped, or FIRST_LOOKBACK before now for a rule that never ran."""
    start = (datetime.fromisoformat(state.seen_until) - OVERLAP if state.seen_until
             else datetime.fromisoformat(now_stamp) - FIRST_LOOKBACK)
    return start.isoformat(timespec="microseconds")


def _digest_due(rule: AlertRule, last_digest_at: str | None, now: datetime) -> bool:
    """A digest time passed since the last digest. A new digest rule's first digest is
    the next digest time, not now."""
    if last_digest_at is None:
        return False
    return datetime.fromisoformat(last_digest_at) < last_digest_slot(rule, now)


def _mail(rule: AlertRule, outbox: Outbox, hits: list[dict], new: dict[str, tuple[dict, str]],
          matcher: Matcher, now: datetime, transport: Transport, result: AlertsRun, *,
          found_at: str, seen_until: str) -> int:
    """Queue the mail telling the rule's new and pending hits (reprints of a story it
    told before are folded, not told again), all in one outbox transaction."""
    digest = rule.mode == "digest"
    groups = stories(outbox.pending(rule.id) + hits)
    told_before = outbox.mailed_stories(rule.id, [g[0]["story"] for g in groups])
    folded = [h["id"] for g in groups if g[0]["story"] in told_before for h in g]
    told = [g for g in groups if g[0]["story"] not in told_before]
    created = now.isoformat(timespec="seconds")
    mail = None
    if told:
        # Newest first, as an analyst reads; an undated article last.
        told.sort(key=lambda g: g[0].get("published_at") or "", reverse=True)
        for copies in told[:FULL_STORIES]:
            lead = copies[0]
            if lead["snippet"] is None and lead["id"] in new:
                record, folded_text = new[lead["id"]]
                add_details(lead, record, rule, matcher.terms(rule), folded_text)
        msg = compose(rule, told, sender=transport.sender, now=now, digest=digest)
        mail = {"recipients": list(rule.recipients), "subject": str(msg["Subject"]),
                "message": msg.as_bytes(policy=policy.SMTP), "created_at": created}
        result.subjects.append(mail["subject"])
    return outbox.settle(rule.id, found_at=found_at, new_hits=hits, mail=mail,
                         mailed=[h["id"] for g in told for h in g], folded=folded,
                         seen_until=seen_until, digest_at=created if digest else None)


def _health_mail(config: Config, data_dir: Path, engine: str | None, settings: Settings,
                 outbox: Outbox, transport: Transport, now: datetime, result: AlertsRun) -> None:
    """Crawl-health problems (`cyz.health`) to CYZ_OPERATOR_EMAIL: each problem once a
    day while it lasts, all of a run's new ones in one mail."""
    from cyz.health import check_health
    from cyz.runs import now as stamp

    report = check_health(data_dir, settings, engine_name=engine, now=now, config_dir=config.dir)
    # A fresh install has no crawl yet: nothing for the operator to do.
    problems = [p for p in report.problems if p.key != "no-crawl-yet"]
    day = now.astimezone(SHANGHAI).date().isoformat()
    keyed = {f"{p.key}@{day}": p for p in problems}
    known = outbox.known(HEALTH_RULE, list(keyed))
    new = [key for key in keyed if key not in known]
    if not new:
        return
    msg = compose_health([keyed[k] for k in new], recipients=list(settings.operator_email),
                         sender=transport.sender, now=now, data_dir=str(data_dir))
    mail = {"recipients": list(settings.operator_email), "subject": str(msg["Subject"]),
            "message": msg.as_bytes(policy=policy.SMTP),
            "created_at": now.isoformat(timespec="seconds")}
    outbox.settle(HEALTH_RULE, found_at=stamp(), mail=mail, mailed=new,
                  new_hits=[{"id": key, "story": key} for key in new])
    result.subjects.append(mail["subject"])


def last_digest_slot(rule: AlertRule, now: datetime) -> datetime:
    """The latest `digest_at` (Asia/Shanghai) at or before `now`."""
    local = now.astimezone(SHANGHAI)
    slot = datetime.combine(local.date(), rule.digest_time, tzinfo=SHANGHAI)
    return slot if slot <= local else slot - timedelta(days=1)


def _send(outbox: Outbox, transport: Transport, result: AlertsRun) -> None:
    from cyz.runs import now as stamp

    try:
        for mail in outbox.queued():
            try:
                refused = transport.send(mail.message, mail.recipients)
            except MailError as exc:
                outbox.mark_failed(mail.id, str(exc))
                result.errors.append(f"mail {mail.id} stays queued: {exc}")
                if isinstance(exc, ServerDown):
                    break  # the server is down: the rest wait for the next run as well
                continue
            # Marked the moment the server took it: the only window for a second copy.
            outbox.mark_sent(mail.id, stamp())
            result.sent += 1
            if refused:
                result.errors.append(f"mail {mail.id} was refused for {', '.join(refused)}")
    finally:
        transport.close()


def preview_rule(config: Config, data_dir: Path, rule: AlertRule, *, since=None,
                 engine: str | None = None, sender: str = MaildirTransport.sender,
                 now: datetime | None = None):
    """What `rule` would mail now (`cyz alerts test`): (hits, the mail or None). With
    `since` (a date), every article published since then that it matches, whether
    mailed before or not; without, the articles new to it, as its next run sees them.
    Reads the index and the outbox, writes nothing."""
    from cyz.index import open_engine
    from cyz.index.base import Filters, indexed_now

    now = now or datetime.now(UTC)
    with Outbox(data_dir) as outbox:
        state = outbox.rule_state(rule.id)
        if since is None:
            filters = Filters(indexed_since=_reads_from(state, indexed_now()))
        else:
            filters = Filters(since=since)
        engine_ = open_engine(engine, data_dir)
        try:
            engine_.ensure_ready()
            records = [r for r in engine_.iter_records(filters) if not r.get("gone_at")]
        finally:
            engine_.close()
        matcher = Matcher([rule])
        matched = matcher.match(records)[rule.id]
        if since is None:
            known = outbox.known(rule.id, [r["id"] for r in matched])
            matched = [r for r in matched if r["id"] not in known]
    hits = [hit_of(r, rule, matcher.terms(rule)) for r in matched]
    told = sorted(stories(hits), key=lambda g: g[0].get("published_at") or "", reverse=True)
    mail = compose(rule, told, sender=sender, now=now, digest=rule.mode == "digest") if told else None
    return hits, mail
