"""Debian's Chromium driven by Selenium, cut off from the network, as the book's checks use it.

``open_browser()`` starts headless ``chromium`` through Debian's ``chromedriver``
(packages ``chromium`` and ``chromium-driver``) with every request outside ``file://``
blocked, so a page that needs the network shows it, as it would in a classroom without one.
``load()`` opens a page and waits for MathJax; ``outside_requests()`` and
``console_errors()`` say what the page tried and what went wrong since the last call.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
WINDOW = (1280, 1600)
# What a page may load: its own files and inline data. Anything else is a network request.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:")
BLOCKED = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]
PAGE_TIMEOUT_S = 60


def open_browser(download_dir: Path | None = None) -> WebDriver:
    """Headless Chromium with the network blocked, console and network events logged."""
    missing = [name for name in (CHROMIUM, CHROMEDRIVER) if shutil.which(name) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install the Debian packages "
                           "chromium and chromium-driver (make system-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--hide-scrollbars",
                 "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    if download_dir is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        })
    driver = webdriver.Chrome(service=Service(shutil.which(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED})
    if download_dir is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done("no MathJax"); }
else { MathJax.startup.promise.then(() => done("ok"), (e) => done("MathJax failed: " + e)); }
"""


def load(driver: WebDriver, url: str) -> str:
    """Open ``url`` and wait until MathJax has typeset it; ``"ok"`` or what went wrong."""
    driver.get(url)
    return driver.execute_async_script(WAIT_FOR_MATHJAX)


def outside_requests(driver: WebDriver) -> list[str]:
    """URLs outside ``file://`` the browser asked for since the last call, in order."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                urls.append(url)
    return urls


def console_errors(driver: WebDriver) -> list[str]:
    """Console errors (failed scripts, missing files, blocked requests) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
