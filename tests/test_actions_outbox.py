"""Post-job actions: the outbox rows a finish writes, triggers, and delivery to real peers."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, RunTemplate
from multiflexi_web.models.action import ActionRun
from multiflexi_web.services.actions import configure
from multiflexi_web.services.actions.configure import When
from tests.action_support import Peer, dispatch_all, http_peer
from tests.executor_support import drain, job, schedule, shell_rt


def _runs(job_id: int | None = None) -> list[ActionRun]:
    db.session.rollback()
    q = select(ActionRun).order_by(ActionRun.id)
    if job_id is not None:
        q = q.where(ActionRun.job_id == job_id)
    return list(db.session.scalars(q))


def _hook(rt: RunTemplate, mode: str, url: str, when: When | None = None, **extra: str) -> None:
    configure.put(rt, mode, "WebHook", {"url": url, **extra}, when or When())
    db.session.commit()


def test_a_template_without_actions_queues_none(app: Flask) -> None:
    rt = shell_rt("true")
    [jid] = schedule(rt)
    drain(app)
    assert job(jid).status == "succeeded"
    assert _runs() == []


def test_success_and_failure_sets_fire_by_exit_code(app: Flask) -> None:
    ok, bad = shell_rt("echo fine"), shell_rt("echo oops >&2; exit 3")
    _hook(ok, "success", "http://127.0.0.1:9/s")
    _hook(ok, "failure", "http://127.0.0.1:9/f")
    _hook(bad, "success", "http://127.0.0.1:9/s")
    _hook(bad, "failure", "http://127.0.0.1:9/f")
    [j_ok], [j_bad] = schedule(ok), schedule(bad)
    drain(app)
    assert [(r.mode, r.status) for r in _runs(j_ok)] == [("success", "pending")]
    assert [(r.mode, r.status) for r in _runs(j_bad)] == [("failure", "pending")]
    keys = {r.idempotency_key for r in _runs()}
    assert len(keys) == 2 and all(k and k.startswith("multiflexi-") for k in keys)


def test_webhook_delivers_signed_json_with_custom_headers(app: Flask) -> None:
    with http_peer() as peer:
        rt = shell_rt("echo hello-from-job; exit 0")
        _hook(rt, "success", peer.url, secret="s3cr3t-key", headers='{"X-Team": "ops"}')
        [jid] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [hit] = peer.hits
    body = hit.json()
    assert body["job_id"] == jid and body["status"] == "succeeded" and body["exit_code"] == 0
    assert body["runtemplate"]["id"] == rt.id and body["app"]["name"]
    assert body["company"]["slug"] and body["links"]["job"].endswith(f"/jobs/{jid}")
    assert "hello-from-job" in body["stdout_tail"]
    assert hit.headers["X-Team"] == "ops"
    stamp, mac = (p.split("=", 1)[1] for p in hit.headers["X-MultiFlexi-Signature"].split(","))
    expected = hmac.new(b"s3cr3t-key", f"{stamp}.".encode() + hit.body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    [run] = _runs(jid)
    assert run.status == "succeeded" and run.attempts == 1 and "HTTP 200" in (run.response or "")
    assert hit.headers["Idempotency-Key"] == run.idempotency_key


def test_peer_failing_three_times_is_retried_and_recorded(app: Flask) -> None:
    peer = Peer(answer=lambda n: (500, "boom") if n < 3 else (200, "fine"))
    with http_peer(peer):
        rt = shell_rt("exit 0")
        _hook(rt, "success", peer.url)
        [jid] = schedule(rt)
        drain(app)
        dispatch_all(app)
    assert len(peer.hits) == 4 and len(set(peer.keys())) == 1
    [run] = _runs(jid)
    assert (run.status, run.attempts) == ("succeeded", 4)
    assert job(jid).status == "succeeded"


def test_a_4xx_is_not_retried(app: Flask) -> None:
    with http_peer(Peer(answer=lambda n: (404, "no such hook"))) as peer:
        rt = shell_rt("exit 0")
        _hook(rt, "success", peer.url)
        [jid] = schedule(rt)
        drain(app)
        dispatch_all(app)
    [run] = _runs(jid)
    assert (run.status, run.attempts) == ("failed", 1) and "HTTP 404" in (run.error or "")


def test_a_peer_that_never_answers_times_out_and_the_job_result_stays(app: Flask) -> None:
    import threading

    from tests.action_support import FAST

    hang = threading.Event()
    with http_peer(Peer(hang=hang)) as peer:
        rt = shell_rt("exit 5")
        _hook(rt, "failure", peer.url)
        [jid] = schedule(rt)
        drain(app)
        settings = FAST.__class__(**{**FAST.__dict__, "timeout": 0.3, "max_attempts": 2})
        dispatch_all(app, settings)
        hang.set()
    [run] = _runs(jid)
    assert (run.status, run.attempts) == ("failed", 2) and "timeout after" in (run.error or "")
    j = job(jid)
    assert (j.status, j.exit_code) == ("failed", 5)


def test_timed_out_lost_cancelled_are_choosable(app: Flask) -> None:
    rt = shell_rt("exit 0")
    _hook(rt, "failure", "http://127.0.0.1:9/a", When(on_timed_out=False, on_cancelled=True))
    [cancelled] = schedule(rt)
    from multiflexi_web.services.jobs import transitions as jobs

    jobs.cancel(cancelled)
    db.session.commit()
    assert [r.mode for r in _runs(cancelled)] == ["failure"]
    from tests.factories import make_job

    # A timed-out finish through the service (the same call the executor makes).
    running = make_job(rt, status=JobStatus.RUNNING)
    jobs.finish(running.id, rt.id, running.started_at, jobs.Outcome(JobStatus.TIMED_OUT, None))
    db.session.commit()
    assert _runs(running.id) == []


def test_recovery_and_after_n_failures_triggers(app: Flask) -> None:
    from multiflexi_web.services.jobs import transitions as jobs
    from tests.factories import make_job

    rt = shell_rt("exit 0")
    _hook(rt, "success", "http://127.0.0.1:9/r", When(trigger="recovery"))
    _hook(rt, "failure", "http://127.0.0.1:9/n", When(trigger="failures", after_failures=2))

    def finish(status: JobStatus) -> list[str]:
        j = make_job(rt, status=JobStatus.RUNNING)
        code = 0 if status is JobStatus.SUCCEEDED else 1
        jobs.finish(j.id, rt.id, j.started_at, jobs.Outcome(status, code))
        db.session.commit()
        return [r.mode for r in _runs(j.id)]

    assert finish(JobStatus.SUCCEEDED) == []  # nothing failed before: no recovery
    assert finish(JobStatus.FAILED) == []  # one failure: below 2
    assert finish(JobStatus.FAILED) == ["failure"]  # the second in a row
    assert finish(JobStatus.FAILED) == []  # fires once per streak
    assert finish(JobStatus.SUCCEEDED) == ["success"]  # the recovery
    assert finish(JobStatus.SUCCEEDED) == []


def test_the_executor_evaluates_triggers_only_for_templates_that_have_them(app: Flask) -> None:
    always, recovery = shell_rt("exit 0"), shell_rt("exit 0")
    _hook(always, "success", "http://127.0.0.1:9/a")
    _hook(recovery, "success", "http://127.0.0.1:9/r", When(trigger="recovery"))
    from multiflexi_web.runner.contexts import ContextCache

    cache = ContextCache(check_every=0)
    ctx_always, _ = cache.get(always.id)
    ctx_recovery, _ = cache.get(recovery.id)
    assert ctx_always is not None and ctx_recovery is not None
    assert (ctx_always.has_actions, ctx_always.action_triggers) == (True, False)
    assert (ctx_recovery.has_actions, ctx_recovery.action_triggers) == (True, True)
    [a], [r] = schedule(always), schedule(recovery)
    drain(app)
    assert [x.mode for x in _runs(a)] == ["success"]
    assert _runs(r) == []  # nothing failed before: no recovery
