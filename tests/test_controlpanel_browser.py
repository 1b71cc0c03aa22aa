"""The control panel in a real browser, against a real hub on the cluster.

Projects are launched the way BinderHub launches them (HubextSpawner,
`.resources` from the loopback GitHub stand-in, SSH key in a real Secret);
headless Chromium then logs in through the dummy authenticator's form and
uses `/hub/home` as a user would: reads the projects, stops one, deletes it.

Selenium blocks, so every browser step runs in a thread: the test kubelet
shares this event loop and must keep serving the pods meanwhile.
"""

import asyncio
import base64
import os
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes_asyncio import client
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hubext.idle import clock
from hubext.idle.clock import parse_iso
from tests.fixtures.hubext_hub import REPO, SHA
from tests.helpers.browser import WAIT, headless_chromium, log_in
from tests.helpers.launch import binder_user_options, launch, server_name, wait_for
from tests.test_idle import idle_config, service

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.hub_version,
    pytest.mark.browser,
    pytest.mark.slow,
]

PANEL_CONFIG = """
from hubext.controlpanel import configure
configure(c)
"""
XSS_REPO = 'https://github.com/x/y"><script>window.__hubext_xss = 1</script>'


@pytest.fixture
def browser():
    """Headless Chromium that talks to nothing but the loopback hub."""
    with headless_chromium() as driver:
        yield driver


async def in_thread(fn, *args):
    return await asyncio.to_thread(fn, *args)


def open_home(driver, hub_url: str) -> None:
    driver.get(f"{hub_url}/hub/home")
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return window._jupyterhub_page_loaded === true")
    )


def row(driver, name: str):
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-server-name="{name}"]')


def quota_text(driver) -> str:
    return driver.find_element(By.ID, "hubext-quota-text").text


def stop_then_delete(driver, name: str) -> None:
    """What the reference service tells users: stop, then the red delete."""
    the_row = row(driver, name)
    delete = the_row.find_element(By.CSS_SELECTOR, ".delete-server")
    assert not delete.is_displayed(), "delete must appear only after stop"
    the_row.find_element(By.CSS_SELECTOR, ".stop-server").click()
    WebDriverWait(driver, 90).until(lambda d: delete.is_displayed())
    assert the_row.find_element(By.CSS_SELECTOR, ".hubext-status").text == "stopped"
    delete.click()
    WebDriverWait(driver, WAIT).until(ec.alert_is_present()).accept()
    WebDriverWait(driver, WAIT).until(ec.staleness_of(the_row))


async def secret_public_key(kube_api, namespace: str, username: str) -> str:
    core = client.CoreV1Api(kube_api)
    secret = await core.read_namespaced_secret(f"{username}-ssh-key", namespace)
    return base64.b64decode(secret.data["ssh.pub"]).decode().strip()


async def test_control_panel_in_a_browser(hubext_hub, browser, kube_api, k8s_namespace):
    hub = await hubext_hub(limit=5, hub_config=PANEL_CONFIG)
    await hub.api("POST", "/users/alice")
    names = []
    for _ in range(2):
        name = server_name(REPO)
        event = await launch(hub, "alice", name, binder_user_options(REPO, SHA))
        assert event.get("ready"), f"{event}\n{hub.log_text()[-3000:]}"
        names.append(name)
    # a launch that did not come from BinderHub, with a hostile repo_url: it
    # is refused, and its row stays, showing nothing of what was sent
    xss = "odd-launch"
    event = await launch(hub, "alice", xss, {"repo_url": XSS_REPO})
    assert event.get("failed") and "'repo_url'" in event["message"], event

    await in_thread(log_in, browser, hub.url, "alice")
    await in_thread(open_home, browser, hub.url)

    assert quota_text(browser) == "3 of 5 projects"
    assert browser.find_elements(By.ID, "stop") == []  # no default server
    assert not browser.find_element(By.ID, "hubext-limit-hint").is_displayed()
    first = row(browser, names[0])
    repo = first.find_element(By.CSS_SELECTOR, ".hubext-repo a")
    assert repo.get_attribute("href") == f"https://github.com/{REPO}"
    commit = first.find_element(By.CSS_SELECTOR, "a.hubext-commit")
    assert commit.text == SHA[:7]
    assert commit.get_attribute("href") == f"https://github.com/{REPO}/tree/{SHA}"
    resources = first.find_element(By.CSS_SELECTOR, ".hubext-resources").text
    assert resources == "CPU 2 (limit 4), RAM 4–8 GB, 1 GPU"  # the file at SHA
    removal = first.find_element(By.CSS_SELECTOR, ".hubext-removal")
    assert removal.text.startswith("removed after ") and removal.text.endswith(
        " UTC if idle"
    )
    # 7 days after the last activity the page shows, which is the hub's
    activity = first.find_element(By.CSS_SELECTOR, ".time-col")
    page_seen = activity.get_attribute("title")
    shown = removal.find_element(By.TAG_NAME, "time").get_attribute("datetime")
    assert _days_between(page_seen, shown) == 7
    code, model = await hub.api("GET", "/users/alice?include_stopped_servers=1")
    hub_seen = model["servers"][names[0]]["last_activity"]
    assert abs(_days_between(hub_seen, page_seen)) < 10 / 1440
    assert activity.text.endswith("ago")  # JupyterHub's script still runs

    key = browser.find_element(By.ID, "hubext-ssh-key").get_attribute("value")
    assert key == await secret_public_key(kube_api, k8s_namespace, "alice")
    assert "PRIVATE" not in browser.page_source

    # the hostile repo_url is neither shown, nor markup, nor a link
    odd = row(browser, xss).find_element(By.CSS_SELECTOR, ".hubext-repo")
    assert odd.text == "—"
    assert odd.find_elements(By.TAG_NAME, "a") == []
    assert "__hubext_xss" not in browser.page_source
    assert browser.execute_script("return window.__hubext_xss") is None

    shot = os.path.join(tempfile.mkdtemp(prefix="hubext-shot-"), "panel.png")
    assert browser.save_screenshot(shot)
    print("control panel screenshot:", shot)

    await in_thread(stop_then_delete, browser, names[0])
    assert quota_text(browser) == "2 of 5 projects"
    with pytest.raises(NoSuchElementException):
        row(browser, names[0])

    async def gone():
        code, model = await hub.api("GET", "/users/alice?include_stopped_servers=1")
        return names[0] not in model["servers"]

    await wait_for(gone, what="the deleted project leaving the hub")
    await in_thread(open_home, browser, hub.url)
    assert quota_text(browser) == "2 of 5 projects"
    assert row(browser, names[1]).is_displayed()


def _days_between(start: str, end: str) -> float:
    from hubext.idle.clock import parse_iso

    return (parse_iso(end) - parse_iso(start)).total_seconds() / 86400


# --- Keep and Start, with the idle service -------------------------------------

BINDERHUB = "https://binder.example.edu/"
KEEP_CONFIG = f"""
from hubext.controlpanel import configure
configure(c)
c.ControlPanel.binderhub_url = "{BINDERHUB}"
"""


def removal_of(driver, name: str) -> str:
    """The removal time the row shows (ISO), read afresh after reloads."""
    try:
        return (
            row(driver, name)
            .find_element(By.TAG_NAME, "time")
            .get_attribute("datetime")
        )
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def press_keep(driver, name: str, before: str) -> str:
    row(driver, name).find_element(By.CSS_SELECTOR, ".hubext-keep").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            removal_of(d, name) not in ("", before)
            and d.execute_script("return window._jupyterhub_page_loaded === true")
        )
    )
    assert driver.current_url.endswith(f"#project-{name}")
    return removal_of(driver, name)


def hub_call(driver, method: str, path: str, body=None, xsrf=True) -> int:
    """A call of the hub API from the page, with its session (and its XSRF
    token, as jhapi sends it); the answer's status."""
    return driver.execute_async_script(
        """
        const [method, path, body, xsrf, done] = arguments;
        let url = window.jhdata.base_url + "api/" + path;
        if (xsrf) url += "?_xsrf=" + encodeURIComponent(window.jhdata.xsrf_token);
        fetch(url, {method, body: body === null ? undefined : JSON.stringify(body),
                    headers: {"Content-Type": "application/json"}})
          .then(r => done(r.status), e => done(String(e)));
        """,
        method,
        path,
        body,
        xsrf,
    )


async def notebook_pod(kube_api, namespace: str, user: str, name: str):
    core = client.CoreV1Api(kube_api)
    for pod in (await core.list_namespaced_pod(namespace)).items:
        notes = pod.metadata.annotations or {}
        if (
            notes.get("hub.jupyter.org/username") == user
            and notes.get("hub.jupyter.org/servername") == name
            and pod.metadata.deletion_timestamp is None
        ):
            return pod
    return None


def shoot(driver, name: str) -> str:
    """A picture of the panel (for docs/_static/, see control-panel.md)."""
    folder = os.environ.get("HUBEXT_PANEL_SHOTS") or tempfile.mkdtemp(
        prefix="hubext-shot-"
    )
    path = os.path.join(folder, f"panel-{name}.png")
    assert driver.find_element(By.CSS_SELECTOR, ".hubext-panel").screenshot(path)
    print("control panel screenshot:", path)
    return path


async def test_keep_and_start_in_a_browser(
    hubext_hub, browser, kube_api, k8s_namespace, tmp_path, monkeypatch
):
    hub = await hubext_hub(limit=5, hub_config=KEEP_CONFIG + idle_config())
    for user in ("alice", "bob"):
        await hub.api("POST", f"/users/{user}")
    options = binder_user_options(REPO, SHA)
    names = [server_name(REPO), server_name(REPO)]
    for name in names:
        event = await launch(hub, "alice", name, options)
        assert event.get("ready"), f"{event}\n{hub.log_text()[-3000:]}"
    kept = names[0]
    first_pod = await notebook_pod(kube_api, k8s_namespace, "alice", kept)
    assert first_pod.metadata.labels["hubext/commit"] == SHA

    # the project is stopped, and its idle period almost over
    code, _ = await hub.api("DELETE", f"/users/alice/servers/{kept}")
    assert code in (202, 204)

    async def stopped():
        model = (await hub.api("GET", "/users/alice?include_stopped_servers=1"))[1]
        server = model["servers"][kept]
        return server if server["stopped"] and not server["pending"] else None

    seen = parse_iso(
        (await wait_for(stopped, what="the project stopping"))["last_activity"]
    )
    assert await notebook_pod(kube_api, k8s_namespace, "alice", kept) is None
    await asyncio.sleep(1)
    now = datetime.now(timezone.utc).isoformat()
    code, _ = await hub.api(  # the other project is in use
        "POST",
        "/users/alice/activity",
        body={"servers": {names[1]: {"last_activity": now}}},
    )
    assert code == 200
    due = seen + timedelta(days=7, seconds=1)
    monkeypatch.setattr(clock, "utcnow", lambda: due)
    dry = await service(hub.api_url, tmp_path, "--dry-run").run_pass()
    assert dry.removed == [f"alice/{kept}"], "the pass below would remove it"
    await asyncio.sleep(2)  # Keep comes later than the last activity

    await in_thread(log_in, browser, hub.url, "alice")
    await in_thread(open_home, browser, hub.url)
    launch_link = browser.find_element(By.ID, "hubext-launch")
    assert launch_link.get_attribute("href") == BINDERHUB
    assert launch_link.text == "Launch a repository"
    the_row = row(browser, kept)
    assert the_row.find_element(By.CSS_SELECTOR, ".hubext-start").is_displayed()
    assert (
        not row(browser, names[1])
        .find_element(By.CSS_SELECTOR, ".hubext-start")
        .is_displayed()
    )
    shoot(browser, "keep-start")
    before = removal_of(browser, kept)
    assert abs((parse_iso(before) - seen).total_seconds() - 7 * 86400) < 60

    kept_at = datetime.now(timezone.utc)
    after = await in_thread(press_keep, browser, kept, before)
    # a full timeout from now, as the hub records it
    moved = parse_iso(after) - kept_at
    assert abs(moved.total_seconds() - 7 * 86400) < 120, (before, after)
    model = (await hub.api("GET", "/users/alice?include_stopped_servers=1"))[1]
    assert parse_iso(model["servers"][kept]["last_activity"]) > seen

    report = await service(hub.api_url, tmp_path).run_pass()
    assert report.errors == 0 and report.removed == [], report
    assert (
        kept
        in (await hub.api("GET", "/users/alice?include_stopped_servers=1"))[1][
            "servers"
        ]
    )

    # someone else's session may neither keep nor start alice's project: the
    # hub answers 404, as for a user that does not exist
    with headless_chromium() as other:
        await in_thread(log_in, other, hub.url, "bob")
        await in_thread(open_home, other, hub.url)
        soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        activity = {"servers": {kept: {"last_activity": soon}}}
        for method, path, body in (
            ("POST", "users/alice/activity", activity),
            ("POST", f"users/alice/servers/{kept}", None),
        ):
            code = await in_thread(hub_call, other, method, path, body)
            assert code == 404, (path, code)
    # the owner's own session, without the page's XSRF token: refused
    code = await in_thread(
        hub_call, browser, "POST", "users/alice/activity", activity, False
    )
    assert code == 403
    model = (await hub.api("GET", "/users/alice?include_stopped_servers=1"))[1]
    assert parse_iso(model["servers"][kept]["last_activity"]) < parse_iso(soon)

    # Start: the stored launch options again, checked again by the spawner
    await in_thread(open_home, browser, hub.url)
    await in_thread(
        lambda: (
            row(browser, kept).find_element(By.CSS_SELECTOR, ".hubext-start").click()
        )
    )
    await in_thread(
        lambda: WebDriverWait(browser, WAIT).until(ec.url_contains("/spawn-pending/"))
    )

    async def running():
        model = (await hub.api("GET", "/users/alice?include_stopped_servers=1"))[1]
        return model["servers"][kept]["ready"] and model["servers"][kept]

    server = await wait_for(running, timeout=90, what="the project running again")
    assert server["user_options"]["repo_url"] == options["repo_url"]
    pod = await notebook_pod(kube_api, k8s_namespace, "alice", kept)
    assert pod.metadata.labels["hubext/commit"] == SHA
    assert _notebook_image(pod) == options["image"] == _notebook_image(first_pod)
    assert pod.metadata.annotations["hubext/repo-url"] == options["repo_url"]


def _notebook_image(pod) -> str:
    return next(c.image for c in pod.spec.containers if c.name == "notebook")
