"""Screenshots of the review console: ``make screenshots`` (``python tests/console_screenshots.py
[--out DIR]``, default ``screenshots/``).

Starts the service as production runs it with the console on (gunicorn, auth on, a temporary
database), makes cards and feedback through its API (``console_data.seed_report``), and saves
full-page PNGs of the rules page, the paste form with its answer, and the report, taken with
Debian's Chromium (installed on first use, see ``browser.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from browser import chromium
from console_data import scenario_request, seed_report
from live_server import start_service


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="screenshots", help="directory for the PNG files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    service = start_service(workers=1, env={"CDS_CONSOLE": "enabled"})
    try:
        seed_report(service)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{service.base_url}/console/")
            page.screenshot(path=out / "console-rules.png", full_page=True)
            page.locator("section#rule-hepatic-start-dose").screenshot(
                path=out / "console-rule-hepatic-start-dose.png"
            )
            _, body = scenario_request("pregnancy-observation")
            page.goto(f"{service.base_url}/console/try")
            page.locator("textarea#request").fill(json.dumps(body, indent=1))
            page.get_by_role("button", name="Show the cards").click()
            page.locator("#answer").wait_for()
            page.screenshot(path=out / "console-try.png", full_page=True)
            page.goto(f"{service.base_url}/console/report")
            page.screenshot(path=out / "console-report.png", full_page=True)
    finally:
        service.stop()
    for name in (
        "console-rules.png",
        "console-rule-hepatic-start-dose.png",
        "console-try.png",
        "console-report.png",
    ):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
