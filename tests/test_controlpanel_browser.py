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

import pytest
from kubernetes_asyncio import client
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.fixtures.hubext_hub import REPO, SHA
from tests.helpers.browser import WAIT, headless_chromium, log_in
from tests.helpers.launch import binder_user_options, launch, server_name, wait_for

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
