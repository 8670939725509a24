"""The review console at ``/console``, for the people who sign off the CDS content.

Three pages, rendered on the server with no asset from anywhere else: every rule of the label
with its text, section and an example card drawn as an EHR draws it (``/console``); a form
to paste a CDS Hooks request and see the cards the service answers (``/console/try``); and
the per-rule report with charts (``/console/report``). Registered by the app factory only with
``CDS_CONSOLE=enabled``. It shows no patient data: example cards come from the bundled,
synthetic scenarios (the card only, never the record behind it), the report is counts and
override reasons, and the paste form shows the cards of what was pasted, read by a sandbox
that fetches nothing (``sandbox``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template, request
from flask.blueprints import BlueprintSetupState
from markdown_it import MarkdownIt
from markupsafe import Markup

from cds_service.console.charts import BAR_WIDTH, OUTCOMES, REASON_BAR_WIDTH, report_rows
from cds_service.console.sandbox import Sandbox, parse_request
from cds_service.fixtures import RECOMMENDATION_KEY
from cds_service.rules.catalog import RULES
from cds_service.services import SERVICES
from cds_service.state import state

log = logging.getLogger(__name__)
console = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
_SANDBOX = "ixazomib_cds_console"
REPORT_PERIODS = (
    (None, "all time"),
    (7, "last 7 days"),
    (30, "last 30 days"),
    (90, "last 90 days"),
)
# CommonMark with raw HTML off: a card's detail is text from the rules, and evidence lines can
# carry text from the EHR's resources; any HTML in it is shown escaped, never run.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})
# Nothing from another origin, no script at all; styles are inline in the pages.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@console.record_once
def _setup(setup: BlueprintSetupState) -> None:
    app = setup.app
    config = app.extensions["ixazomib_cds"].config
    app.extensions[_SANDBOX] = Sandbox(config)
    if config.auth_required:
        log.warning(
            "CDS_CONSOLE=enabled: /console answers without a token (the rules, example cards, "
            "the per-rule report, and cards for pasted requests, which it never fetches for); "
            "let only the reviewers' network reach it."
        )
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["web_url"] = _web_url


def render_markdown(text: object) -> Markup:
    """A card's markdown detail as HTML; safe to mark so, as raw HTML in it comes out escaped."""
    return Markup(_MARKDOWN.render(str(text or "")))  # noqa: S704 (html off: escaped)


def _sandbox() -> Sandbox:
    from flask import current_app

    found: Sandbox = current_app.extensions[_SANDBOX]
    return found


@console.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@console.get("/")
def rules() -> str:
    examples = _sandbox().examples()
    return render_template("console/rules.html", page="rules", rules=RULES, examples=examples)


@console.route("/try", methods=["GET", "POST"])
def try_request() -> str:
    text = request.form.get("request", "") if request.method == "POST" else ""
    chosen = request.form.get("service", "") if request.method == "POST" else ""
    answer = None
    problem = None
    service_id = None
    if request.method == "POST":
        parsed, problem = parse_request(text)
        if parsed is not None:
            service_id = chosen or _service_for(parsed.get("hook"))
            if service_id is None or service_id not in SERVICES:
                problem = "Choose a service: the request's hook is not one this service answers."
            else:
                answer = _sandbox().call(service_id, parsed)
    return render_template(
        "console/try.html",
        page="try",
        services=SERVICES.values(),
        text=text,
        chosen=chosen,
        service_id=service_id,
        answer=answer,
        problem=problem,
    )


@console.get("/report")
def report() -> str:
    days = request.args.get("days", type=int)
    if days is not None and days not in {d for d, _ in REPORT_PERIODS}:
        days = None
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    rows = report_rows(state().store.rule_report(since))
    return render_template(
        "console/report.html",
        page="report",
        rows=rows,
        days=days,
        periods=REPORT_PERIODS,
        outcomes=OUTCOMES,
        bar_width=BAR_WIDTH,
        reason_bar_width=REASON_BAR_WIDTH,
        totals={
            "shown": sum(r.shown for r in rows),
            "accepted": sum(r.accepted for r in rows),
            "overridden": sum(r.overridden for r in rows),
            "no_response": sum(r.no_response for r in rows),
        },
    )


def recommendation(card: dict[str, Any]) -> dict[str, Any]:
    found = (card.get("extension") or {}).get(RECOMMENDATION_KEY)
    return found if isinstance(found, dict) else {}


console.add_app_template_global(recommendation, "recommendation")


def _service_for(hook: Any) -> str | None:
    return next((s.id for s in SERVICES.values() if s.hook == hook), None)


def _web_url(url: Any) -> str | None:
    """The URL if it is an http(s) one (a card's link); anything else is not made a link."""
    text = str(url or "")
    return text if urlsplit(text).scheme in ("http", "https") else None
