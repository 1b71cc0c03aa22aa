"""Headless Chromium for the browser tests, and signing in at the hub.

Both browser tests drive Debian's chromium through the chromedriver of the
same package (pinned together) with the same quiet profile; here once, so a
flag or a login change reaches both.
"""

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30
QUIET_FLAGS = (
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
)
# nothing resolves but 127.0.0.1: no other address can be reached
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@contextmanager
def headless_chromium(
    loopback_only: bool = False, network_log: bool = False
) -> Iterator[webdriver.Chrome]:
    """A Chromium in a fresh profile, quit and its profile removed after.

    `loopback_only`: no host name resolves but 127.0.0.1; `network_log`:
    keep the DevTools log `requested_urls` reads.
    """
    profile = tempfile.mkdtemp(prefix="hubext-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = QUIET_FLAGS + ((LOOPBACK_ONLY,) if loopback_only else ())
    for flag in (*flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def log_in(driver, hub_url: str, username: str) -> None:
    """The dummy authenticator's form, as a user fills it in."""
    # straight to the panel: the hub's default next page would start the
    # user's default server
    driver.get(f"{hub_url}/hub/login?next=%2Fhub%2Fhome")
    driver.find_element(By.ID, "username_input").send_keys(username)
    driver.find_element(By.ID, "password_input").send_keys("any")
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, WAIT).until(ec.url_contains("/hub/home"))


def requested_urls(driver) -> list:
    """Every URL the browser asked for since the last call (`network_log`)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_loopback(urls: list) -> list:
    """The web URLs among `urls` whose host is not 127.0.0.1."""
    return [
        u
        for u in urls
        if urlsplit(u).scheme in ("http", "https", "ws", "wss")
        and urlsplit(u).hostname != "127.0.0.1"
    ]
