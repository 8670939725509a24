"""A real browser for the tests: Debian's Chromium, driven by Playwright for Python.

Playwright's own browser downloads are never used (``playwright install`` is not run): the
browser is the ``chromium`` Debian package, installed with ``apt-get install -y chromium`` on
first use when missing (as root, like tests/pg.py installs PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and cannot be installed here; the message says why."""


def ensure_chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable(
            f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get); "
            "install the Debian package 'chromium'"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if attempt.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if attempt.returncode != 0 or not CHROMIUM.is_file():
        raise BrowserUnavailable(
            f"apt-get install chromium failed:\n{attempt.stdout[-2000:]}{attempt.stderr[-2000:]}"
        )
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
