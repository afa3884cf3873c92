"""The "ML" view of the Airflow UI: models, reports and predictions beside the DAGs.

A FastAPI app that the API server mounts at ``/ml`` and that the UI shows, in its own
menu entry, inside the Airflow page. It reads what the pipeline has published under
``ML_DATA_DIR`` and writes nothing:

- ``/ml/``: champion and challenger with their holdout metrics beside the baselines, every
  registered version, the alias audit log, the latest drift and backtest reports, and a
  date picker for the predictions.
- ``/ml/models/<version>``: a version's model card, rendered from the registry.
- ``/ml/predictions?date=YYYY-MM-DD``: a preview of that date's prediction partition.
- ``/ml/reports/<path>``: a file from the reports folder, and from nowhere else.

Every route requires the login of the rest of the UI (the ``_token`` cookie the UI sets,
or a bearer token from ``POST /auth/token``); a browser without it is sent to the login
page. Every value shown is HTML-escaped, and every page may be framed only by the UI
itself, is never cached and sends no referrer elsewhere. Each section of a page reads its
own files and degrades on its own: one unreadable file shows as a line naming it, not as
an error for the whole page. Errors are pages with a way back, not JSON.
Nothing heavy is imported here: the API server, scheduler and workers all load plugins.
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

URL_PREFIX = "/ml"
PREVIEW_ROWS = 50
AUDIT_ROWS = 30
BACKTEST_REPORTS = 10
# The view's pages and the pipeline's reports are self-contained (inline style and SVG):
# no script may run in them, and nothing may be fetched from elsewhere.
# Framed only by the Airflow UI itself; never cached (the pages show what the login
# allows); no referrer sent to other sites.
PRIVATE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'self'",
    **PRIVATE_HEADERS,
}


def settings():
    """The pipeline's settings, read from the API server's environment (``ML_DATA_DIR``)."""
    from ml.config import load_settings

    return load_settings()


SettingsDep = Annotated[Any, Depends(settings)]

app = FastAPI(
    title="ML",
    description="Models, reports and predictions of the batch ML pipelines.",
    # The same login as the rest of the UI: viewers of the website may read this view.
    dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _html(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    from ml.reports import page

    nav = (
        f"<p class='muted'><a href='{URL_PREFIX}/'>ML overview</a> &middot; "
        f"<a href='{URL_PREFIX}/#predictions'>predictions</a> &middot; "
        f"<a href='{URL_PREFIX}/#reports'>reports</a></p>"
    )
    return HTMLResponse(page(title, nav + body), status_code=status_code, headers=SECURITY_HEADERS)


@app.exception_handler(StarletteHTTPException)
def _error_page(request: Request, exc: StarletteHTTPException):
    """Errors as pages with a way back; a browser that is not logged in goes to the login."""
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(_login_url(request), status_code=303, headers=PRIVATE_HEADERS)
    title = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(
        exc.status_code, "Error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else title
    return _html(title, f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>", exc.status_code)


@app.exception_handler(RequestValidationError)
def _bad_request_page(request: Request, exc: RequestValidationError) -> HTMLResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ())[1:])}: {error.get('msg', '')}"
        for error in exc.errors()
    )
    return _html("Bad request", f"<h1>Bad request</h1><p>{escape(problems)}</p>", 422)


def _login_url(request: Request) -> str:
    """The auth manager's login page, coming back here afterwards."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=str(request.url))
    except Exception:  # no auth manager in this process (tests): the simple one's page
        return f"/auth/login?next={quote(str(request.url), safe='')}"


SECTION_ERRORS = (LookupError, OSError, ValueError, TypeError, KeyError)


def _section(render: Callable[..., str], *args: Any) -> str:
    """A section of a page, or one line naming what it could not read."""
    try:
        return render(*args)
    except SECTION_ERRORS as exc:  # the package's errors derive from these too
        log.warning("ML view: %s unavailable: %s", render.__name__, exc)
        return f"<p class='error'>Unavailable: {escape(_one_line(exc))}</p>"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if "/" in text else f"{type(exc).__name__}: {text}"


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def _model_link(version: str):
    from ml.reports import Html

    return Html(f"<a href='models/{escape(quote(version))}'>{escape(version)}</a>")


def _role_card(cfg, role: str, version: str | None) -> str:
    from ml import registry
    from ml.reports import table

    if version is None:
        return f"<div class='card'><h3>{escape(role)}</h3><p class='muted'>none</p></div>"
    try:
        metadata = registry.load_metadata(cfg, version)
        holdout = registry.load_metrics(cfg, version)["holdout"]
    except SECTION_ERRORS as exc:
        return (
            f"<div class='card'><h3>{escape(role)}: {escape(version)}</h3>"
            f"<p class='error'>Unavailable: {escape(_one_line(exc))}</p></div>"
        )
    model, baselines = holdout["model"], holdout["baselines"]
    rows = [
        [name, _metric(m, "log_loss"), _metric(m, "auc"), _metric(m, "ece")]
        for name, m in (
            ("model", model),
            ("heuristic", baselines.get("heuristic", {})),
            ("prior rate", baselines.get("prior_rate", {})),
        )
    ]
    return (
        f"<div class='card'><h3>{escape(role)}: {_model_link(version)}</h3>"
        f"<p class='muted'>{escape(metadata['algorithm'])}, as of {escape(metadata['as_of'])}; "
        f"holdout {escape(holdout['start'])}..{escape(holdout['end'])}, "
        f"{holdout['rows']:,} flights</p>" + table(["", "log loss", "AUC", "ECE"], rows) + "</div>"
    )


def _serving(cfg) -> str:
    from ml import registry

    aliases = registry.read_aliases(cfg)
    return (
        "<div class='grid'>"
        + _role_card(cfg, "champion", aliases.get("champion"))
        + _role_card(cfg, "challenger", aliases.get("challenger"))
        + "</div>"
    )


def _versions_table(cfg) -> str:
    from ml import registry
    from ml.reports import table

    rows = []
    for meta in registry.list_versions(cfg):
        try:
            holdout = registry.load_metrics(cfg, meta["version"])["holdout"]
            heuristic = holdout["baselines"].get("heuristic", {})
        except SECTION_ERRORS as exc:
            rows.append(
                [meta["version"], meta["algorithm"], meta["as_of"], _one_line(exc)]
                + [None] * 3
                + [", ".join(meta["aliases"])]
            )
            continue
        rows.append(
            [
                _model_link(meta["version"]),
                meta["algorithm"],
                meta["as_of"],
                _metric(holdout["model"], "log_loss"),
                _metric(heuristic, "log_loss"),
                _metric(holdout["model"], "auc"),
                _metric(heuristic, "auc"),
                ", ".join(meta["aliases"]),
            ]
        )
    if not rows:
        return "<p class='muted'>No model registered yet.</p>"
    return table(
        ["version", "algorithm", "as of", "log loss", "heuristic", "AUC", "heuristic", "aliases"],
        rows,
    )


def _audit_table(cfg) -> str:
    from ml import registry
    from ml.reports import table

    entries = registry.audit_log(cfg)[::-1][:AUDIT_ROWS]
    if not entries:
        return "<p class='muted'>No alias has changed yet.</p>"
    rows = [
        [
            e.get("at", ""),
            e.get("alias", ""),
            e.get("from") or "none",
            e.get("to", ""),
            e.get("reason", ""),
        ]
        for e in entries
    ]
    return table(["at (UTC)", "alias", "from", "to", "reason"], rows)


def _report_link(root: Path, path: Path) -> str:
    relative = path.relative_to(root).as_posix()
    return f"<a href='reports/{escape(quote(relative))}'>{escape(relative)}</a>"


def _reports_list(cfg) -> str:
    root = cfg.paths.reports
    items = []
    drift = sorted(cfg.paths.drift_reports.glob("drift_*.html"))
    if drift:
        items.append(f"<li>latest drift and performance: {_report_link(root, drift[-1])}</li>")
    backtests = sorted(
        cfg.paths.backtest_reports.glob("*.html"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in backtests[:BACKTEST_REPORTS]:
        items.append(f"<li>backtest: {_report_link(root, path)}</li>")
    if cfg.paths.validation_index.exists():
        items.append(
            f"<li>data validation: {_report_link(root, cfg.paths.validation_index)} "
            "(every run of the expectation suites)</li>"
        )
    if not items:
        return "<p class='muted'>No report yet.</p>"
    return "<ul>" + "".join(items) + "</ul>"


def _prediction_dates(cfg) -> list[str]:
    """The dates with a published prediction partition, oldest first."""
    folder = cfg.paths.predictions
    if not folder.exists():
        return []
    dates = []
    for partition in folder.iterdir():
        try:
            day = dt.date.fromisoformat(partition.name.partition("=")[2])
        except ValueError:
            continue
        if cfg.paths.predictions_partition(day).exists():
            dates.append(day.isoformat())
    return sorted(dates)


@app.get("/", response_class=HTMLResponse)
def overview(cfg: SettingsDep) -> HTMLResponse:
    """Champion, challenger, versions, audit log, reports and the predictions picker."""
    dates = _prediction_dates(cfg)
    picker = (
        "<form action='predictions' method='get'>"
        f"<input type='date' name='date' value='{escape(dates[-1])}' "
        f"min='{escape(dates[0])}' max='{escape(dates[-1])}'> "
        "<button type='submit'>show</button></form>"
        f"<p class='muted'>Dates on file: {len(dates)}, {escape(dates[0])} to {escape(dates[-1])}</p>"
        if dates
        else "<p class='muted'>No predictions yet.</p>"
    )
    body = (
        "<h1>ML: flight-delay risk</h1>"
        "<h2>Serving</h2>"
        + _section(_serving, cfg)
        + "<h2 id='predictions'>Predictions</h2>"
        + picker
        + "<h2 id='reports'>Reports</h2>"
        + _section(_reports_list, cfg)
        + "<h2>Model versions</h2><p class='muted'>Holdout metrics of each version beside "
        "the heuristic baseline on the same flights.</p>"
        + _section(_versions_table, cfg)
        + "<h2>Audit log</h2><p class='muted'>Every change of an alias, newest first.</p>"
        + _section(_audit_table, cfg)
    )
    return _html("ML", body)


@app.get("/models/{version}", response_class=HTMLResponse)
def model_card(version: str, cfg: SettingsDep) -> HTMLResponse:
    """A registered version's model card; any other name is not found."""
    from ml import registry
    from ml.model_card import render_html

    known = {meta["version"] for meta in registry.list_versions(cfg)}
    if version not in known:
        raise HTTPException(status_code=404, detail=f"no model version {version!r}")
    try:
        html = render_html(
            registry.load_metadata(cfg, version), registry.load_metrics(cfg, version)
        )
    except SECTION_ERRORS as exc:
        problem = escape(_one_line(exc))
        body = f"<h1>Model card {escape(version)}</h1><p class='error'>Unavailable: {problem}</p>"
        return _html(f"Model card {version}", body, status_code=500)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@app.get("/predictions", response_class=HTMLResponse)
def predictions(
    cfg: SettingsDep,
    date: Annotated[dt.date, Query(description="The flight date, YYYY-MM-DD.")],
    role: Annotated[str, Query(pattern="^(champion|challenger)$")] = "champion",
    limit: Annotated[int, Query(ge=1, le=1000)] = PREVIEW_ROWS,
) -> HTMLResponse:
    """The riskiest flights of a date, and the count of each risk band."""
    from ml.errors import MLError
    from ml.queries import risk_bands, riskiest_flights
    from ml.reports import format_reasons, table

    title = f"Predictions for {date.isoformat()} ({role})"
    if not cfg.paths.predictions_partition(date).exists():
        raise HTTPException(status_code=404, detail=f"no predictions for {date.isoformat()}")
    try:
        bands = risk_bands(cfg, date, role=role).itertuples(index=False)
        frame = riskiest_flights(cfg, date, role=role, limit=limit)
    except MLError as exc:
        body = f"<h1>{escape(title)}</h1><p class='error'>Unavailable: {escape(_one_line(exc))}</p>"
        return _html(title, body, status_code=500)
    band_rows = [[band, f"{n:,}", mean] for band, n, mean in bands]
    columns = [
        "flight_id",
        "carrier",
        "flight",
        "origin",
        "dest",
        "departs_local",
        "p_delayed",
        "risk_band",
        "model_version",
        "top_reasons",
    ]
    rows = [
        [
            flight_id,
            f"{carrier} {flight}",
            f"{origin} \u2192 {dest}",
            departs,
            p,
            band,
            format_reasons(reasons),
            version,
        ]
        for flight_id, carrier, flight, origin, dest, departs, p, band, version, reasons in frame[
            columns
        ].itertuples(index=False)
    ]
    other = "challenger" if role == "champion" else "champion"
    header = ["flight_id", "flight", "route", "departs (New York)", "p_delayed", "band"]
    body = (
        f"<h1>{escape(title)}</h1>"
        f"<p class='muted'><a href='predictions?date={escape(date.isoformat())}"
        f"&amp;role={other}'>the {other}'s rows</a></p>"
        + table(["risk band", "flights", "mean p_delayed"], band_rows, digits=3)
        + f"<h2>The {len(rows)} riskiest flights</h2>"
        + table([*header, "top reasons", "model"], rows, digits=3)
    )
    return _html(f"Predictions {date.isoformat()}", body)


@app.get("/reports/{relative:path}")
def report_file(relative: str, cfg: SettingsDep) -> FileResponse:
    """A file under the reports folder. Paths that leave it (``..``, absolute paths,
    symbolic links pointing outside) are not found."""
    root = cfg.paths.reports.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links
        raise HTTPException(status_code=404, detail="no such report") from None
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such report")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media_type, headers=SECURITY_HEADERS)


class MLViewPlugin(AirflowPlugin):
    """Registers the app with the API server and its entry in the UI's navigation."""

    name = "ml_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ML"}]
    external_views = [
        {
            "name": "ML",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "ml",
            "nav_top_level": True,
        }
    ]
