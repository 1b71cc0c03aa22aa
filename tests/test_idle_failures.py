"""hubext-idle keeps going: a hub that is down or slow, a hook that cannot
run, a bug hit by one server. Against a real JupyterHub (`hub_factory`)."""

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest

from hubext.idle import clock, sweep
from tests.helpers.httpproxy import CountingProxy
from tests.test_idle import WEEK, add_server, idle_config, servers_of, service

pytestmark = [pytest.mark.hub]


@pytest.fixture
def week_later(monkeypatch):
    """The service's clock: `week_later(hours)` = now + 7 days + hours."""
    real = datetime.now(timezone.utc)

    def set_offset(hours=0.5):
        later = real + WEEK + timedelta(hours=hours)
        monkeypatch.setattr(clock, "utcnow", lambda: later)

    set_offset()
    return set_offset


def said(app):
    """The service's log lines, as they come."""
    lines = []
    app.log.addFilter(lambda record: lines.append(record.getMessage()) or True)
    return lines


async def test_connection_refused_is_retried(hub_factory, tmp_path, week_later):
    """The hub is down when the pass starts and back a little later."""
    hub = await hub_factory(idle_config())
    await add_server(hub, "alice", "p1")
    await hub.stop()
    app = service(hub.api_url, tmp_path)
    lines = said(app)
    passing = asyncio.ensure_future(app.run_pass())
    await asyncio.sleep(1)
    await hub.start()
    report = await passing
    assert report.errors == 0 and report.removed == ["alice/p1"], lines
    assert any("retry 1/" in m and "refused" in m.lower() for m in lines), lines


async def test_timeouts_are_retried(hub_factory, tmp_path, week_later):
    """A hub too slow for `request_timeout` once, then fast again."""
    hub = await hub_factory(idle_config())
    await add_server(hub, "alice", "p1")
    proxy = CountingProxy(hub.url)
    proxy.delay = 5.0
    app = service(proxy.url + "/hub/api", tmp_path, request_timeout=1.0)
    lines = said(app)

    def fast_again(record):
        if "retry" in record.getMessage():
            proxy.delay = 0
        return True

    app.log.addFilter(fast_again)
    report = await app.run_pass()
    assert report.errors == 0 and report.removed == ["alice/p1"], lines
    assert any("retry 1/" in m and "Timeout" in m for m in lines), lines
    proxy.close()


async def test_a_bug_hit_by_one_server_does_not_stop_the_pass(
    hub_factory, tmp_path, week_later, monkeypatch
):
    """Whatever goes wrong with one server is logged; the others are handled."""
    hub = await hub_factory(idle_config())
    for user, name in [("alice", "broken"), ("alice", "fine"), ("bob", "fine")]:
        await add_server(hub, user, name)
    real_decide = sweep.decide

    def decide(user, server, *args, **kwargs):
        if server.get("name") == "broken":
            raise RuntimeError("a bug that only this server hits")
        return real_decide(user, server, *args, **kwargs)

    monkeypatch.setattr(sweep, "decide", decide)
    app = service(hub.api_url, tmp_path)
    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    app.log.addHandler(handler)
    report = await app.run_pass()
    assert sorted(report.removed) == ["alice/fine", "bob/fine"]
    assert report.errors == 1 and app.metrics.errors._value.get() == 1
    bug = [r for r in caught if r.exc_info and "alice/broken" in r.getMessage()]
    assert bug and "only this server hits" in str(bug[0].exc_info[1])
    assert "broken" in await servers_of(hub, "alice")


@pytest.mark.parametrize(
    "hook",
    [
        {"notice_command": ["/nonexistent/hubext-notify"]},
        {"notice_url": "http://127.0.0.1:9/closed-port"},
    ],
    ids=["missing-command", "closed-webhook"],
)
async def test_a_hook_that_cannot_run_is_a_failed_notice(
    hub_factory, tmp_path, week_later, hook
):
    """A command that does not exist or a webhook nobody listens on."""
    hub = await hub_factory(idle_config())
    for user in ("alice", "bob"):
        await add_server(hub, user, "thesis")
    week_later(-12)  # inside the last day before removal
    app = service(hub.api_url, tmp_path, **hook)
    lines = said(app)
    report = await app.run_pass()
    assert report.errors == 2 and report.notified == [], lines
    what = next(iter(hook.values()))
    where = what[0] if isinstance(what, list) else what
    assert sum(where in m for m in lines) >= 2, lines
    assert not (tmp_path / "state.json").exists(), "a failed notice is not recorded"


async def test_a_failed_pass_is_logged_and_the_next_one_runs(
    hub_factory, tmp_path, week_later
):
    """The hub stays down longer than the retries: that pass fails, the next
    one, with the hub back, does the work."""
    hub = await hub_factory(idle_config())
    await add_server(hub, "alice", "p1")
    await hub.stop()
    app = service(hub.api_url, tmp_path, api_retries=1)
    lines = said(app)
    report = await app.run_pass()  # returns, does not raise
    assert report.errors == 1 and report.removed == []
    assert any(m.startswith("Listing users failed") for m in lines), lines

    app.once, app.interval = False, 0.5
    serving = asyncio.ensure_future(app.serve())
    await asyncio.sleep(1)
    assert not serving.done(), serving.exception()
    await hub.start()
    while app.metrics.removed._value.get() < 1:
        assert not serving.done(), serving.exception()
        await asyncio.sleep(0.2)
    serving.cancel()
    assert "p1" not in await servers_of(hub, "alice")
