"""The local-stack tutorial's screenshots, taken from the real pages.

Run from the repository's root, after `bash dev/setup`::

    .venv/bin/python docs/screenshots.py

It starts the whole stack as `bash dev/up` does (`devstack.up.running`, in a
temporary directory), walks the newcomer's path in headless Chromium (sign
in through BinderHub, paste the sample repository's URL, launch, the control
panel, launch up to the quota) and saves each page as a PNG in
docs/_static/. Chromium runs with the test suite's quiet flags (no
background networking, updates, sync or first-run requests) and resolves
nothing but the stack's two loopback addresses.
"""

import asyncio
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from devstack.up import BINDERHUB_IP, Stack, running  # noqa: E402
from tests.helpers.browser import CHROMEDRIVER, CHROMIUM, QUIET_FLAGS  # noqa: E402

OUT = ROOT / "docs" / "_static"
WINDOW = (1000, 900)
USER = "alice"
LAUNCH_WAIT = 120
PROJECTS = 5  # c.QuotaPolicy.default_limit in jupyterhub_config.py


@contextmanager
def chromium():
    """Headless Chromium in a fresh profile that reaches only the stack."""
    with tempfile.TemporaryDirectory(prefix="hubext-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        only_stack = f"MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE {BINDERHUB_IP}"
        for flag in QUIET_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--host-resolver-rules={only_stack}")
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.set_window_size(*WINDOW)
            yield driver
        finally:
            driver.quit()


def page_text(driver, selector: str) -> str:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => e.textContent).join('\\n')",
        selector,
    )


def show(driver, selector: str) -> None:
    """Scroll `selector` to near the top of the window."""
    driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 20);",
        selector,
    )


def open_build_log(driver) -> None:
    """Press "show" on the launch page's Build Logs card."""
    driver.execute_script(
        "for (const b of document.querySelectorAll('button')) {"
        "  const card = b.closest('.card');"
        "  if (b.textContent.trim() === 'show' && card &&"
        "      card.textContent.includes('Build Logs')) { b.click(); }"
        "}"
    )


def save(driver, name: str) -> None:
    path = OUT / name
    driver.save_screenshot(str(path))
    print(f"saved {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")


def wait(driver, condition, timeout: float = LAUNCH_WAIT):
    return WebDriverWait(driver, timeout).until(condition)


def newcomer(driver, stack: Stack) -> None:
    binder, hub = stack.binderhub.url, stack.hub.url
    # BinderHub sends a new visitor to the hub's login page, and back
    driver.get(f"{binder}/")
    wait(driver, ec.presence_of_element_located((By.ID, "username_input")))
    driver.find_element(By.ID, "username_input").send_keys(USER)
    driver.find_element(By.ID, "login_submit").click()
    wait(driver, ec.url_to_be(f"{binder}/"))

    field = wait(driver, ec.element_to_be_clickable((By.NAME, "repository")))
    field.send_keys(stack.sample_url)
    wait(driver, lambda d: "/v2/git/" in page_text(d, "[data-testid=launch-url]"))
    save(driver, "binderhub-launch.png")

    driver.find_element(By.ID, "btn-launch").click()
    # the progress bar and the build log appear below the form
    wait(driver, lambda d: "Launching" in page_text(d, ".progress-bar"))
    open_build_log(driver)
    show(driver, "form")
    time.sleep(1)  # the log's first lines
    save(driver, "binderhub-progress.png")
    user_prefix = f"{hub}/user/{USER}/"
    wait(driver, ec.url_contains(user_prefix))
    wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")
    save(driver, "notebook.png")

    driver.get(f"{hub}/hub/home")
    wait(driver, ec.presence_of_element_located((By.TAG_NAME, "table")))
    save(driver, "control-panel.png")

    launch_url = f"{binder}/v2/git/{quote(stack.sample_url, safe='')}/HEAD"
    for _ in range(PROJECTS - 1):
        driver.get(launch_url)
        wait(driver, ec.url_contains(user_prefix))
    driver.get(launch_url)
    wait(driver, lambda d: "Failed" in page_text(d, ".progress-bar"))
    show(driver, ".progress-bar")
    # the log's last lines: the message
    driver.execute_script(
        "const v = document.querySelector('.xterm-viewport');"
        "v.scrollTop = v.scrollHeight;"
    )
    time.sleep(0.5)
    save(driver, "quota-message.png")


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hubext-screenshots-") as workdir:
        async with running(Path(workdir)) as stack:
            # selenium blocks: the test kubelet runs the pods on this loop
            with chromium() as driver:
                try:
                    await asyncio.to_thread(newcomer, driver, stack)
                except Exception:
                    save(driver, "failed.png")  # what the page showed instead
                    raise


if __name__ == "__main__":
    asyncio.run(main())
