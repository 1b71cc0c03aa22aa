"""BinderHub's own launch page in headless Chromium, against hubext.

The user signs in at the hub, opens BinderHub's launch URL
(`/v2/git/<quoted url>/<ref>`), and BinderHub's JS (built from its source by
dev/setup) runs the launch: once into the notebook server, once up to the
quota, where the page itself must show hubext's message. Chromium resolves
no host name at all and every request it made is checked: only 127.0.0.1.

Selenium blocks, so every browser step runs in a thread: the test kubelet
shares this event loop and must keep serving the pods meanwhile.
"""

import asyncio
import json
import shutil
import tempfile
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hubext.quota import quota_message
from tests.fixtures.binderhub import Launch, record

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.browser,
    pytest.mark.slow,
]

# Debian's chromium and the chromedriver of the same package: pinned together
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30
LAUNCH_WAIT = 120


@pytest.fixture
def browser():
    """Headless Chromium that can reach nothing but loopback addresses."""
    profile = tempfile.mkdtemp(prefix="hubext-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        # nothing resolves but 127.0.0.1: no other address can be reached
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver) -> list:
    """Every URL the browser asked for since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def log_in(driver, hub_url: str, username: str) -> None:
    driver.get(f"{hub_url}/hub/login?next=%2Fhub%2Fhome")
    driver.find_element(By.ID, "username_input").send_keys(username)
    driver.find_element(By.ID, "password_input").send_keys("any")
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, WAIT).until(ec.url_contains("/hub/home"))


def page_log(driver) -> str:
    """The page's build log terminal, row by row as it is drawn."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.xterm-rows > div'))"
        ".map(r => r.textContent.trimEnd()).join('\\n').trim()"
    )


def progress_label(driver) -> str:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.progress-bar strong'))"
        ".map(e => e.textContent).join(' > ')"
    )


def launch_until_server(driver, url: str, server_prefix: str) -> None:
    driver.get(url)
    WebDriverWait(driver, LAUNCH_WAIT).until(ec.url_contains(server_prefix))


def launch_until_failed(driver, url: str) -> tuple:
    driver.get(url)
    WebDriverWait(driver, LAUNCH_WAIT).until(
        lambda d: progress_label(d).endswith("Failed")
    )
    return progress_label(driver), page_log(driver)


def squeeze(text: str) -> str:
    """Text without whitespace: the terminal wraps long lines at its width."""
    return "".join(text.split())


async def test_launch_page_in_chromium(binderhub, browser):
    binder = await binderhub(limit=1)
    hub = binder.hub
    await asyncio.to_thread(log_in, browser, hub.url, "erin")

    # the first project: the page launches it and opens the notebook server
    launch_url = f"{binder.url}/v2/{binder.spec('HEAD')}"
    await asyncio.to_thread(
        launch_until_server, browser, launch_url, f"{hub.url}/user/erin/project-"
    )
    code, model = await hub.api("GET", "/users/erin")
    [name] = [n for n in model["servers"] if n]
    assert model["servers"][name]["ready"]
    assert urlsplit(browser.current_url).path.startswith(f"/user/erin/{name}/")

    # the second: refused on the page, with hubext's message in its log
    label, shown = await asyncio.to_thread(launch_until_failed, browser, launch_url)
    record(
        "browser: 2nd project at a quota of 1",
        Launch([{"phase": "failed", "message": shown}]),
    )
    message = quota_message(1, 1, f"{hub.url}/hub/home")
    assert label == "Failed"
    assert squeeze(shown).endswith(squeeze(message)), shown
    assert squeeze("Launch attempt 3 failed, retrying...") in squeeze(shown)
    assert browser.current_url == launch_url  # still on the page

    urls = await asyncio.to_thread(requested_urls, browser)
    assert f"{binder.url}/build/{binder.spec('HEAD')}" in {
        u.split("?")[0] for u in urls
    }
    outside = [
        u
        for u in urls
        if urlsplit(u).scheme in ("http", "https", "ws", "wss")
        and urlsplit(u).hostname != "127.0.0.1"
    ]
    assert not outside, outside
