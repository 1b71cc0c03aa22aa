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
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hubext.quota import quota_message
from tests.fixtures.binderhub import Launch, record
from tests.helpers.browser import (
    headless_chromium,
    log_in,
    off_loopback,
    requested_urls,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.hub_version,
    pytest.mark.browser,
    pytest.mark.slow,
]

LAUNCH_WAIT = 120


@pytest.fixture
def browser():
    """Headless Chromium that can reach nothing but loopback addresses."""
    with headless_chromium(loopback_only=True, network_log=True) as driver:
        yield driver


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
    # refused before the build, once: no launch attempts, no retries
    assert "retrying" not in shown, shown
    assert squeeze(shown).count(squeeze(message)) == 1, shown
    assert browser.current_url == launch_url  # still on the page

    urls = await asyncio.to_thread(requested_urls, browser)
    assert f"{binder.url}/build/{binder.spec('HEAD')}" in {
        u.split("?")[0] for u in urls
    }
    outside = off_loopback(urls)
    assert not outside, outside
