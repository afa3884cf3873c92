"""The "ML" view of the Airflow UI: models, reports and predictions beside the DAGs.

A FastAPI app that the API server mounts at ``/ml`` and that the UI shows, in its own
menu entry, inside the Airflow page. It reads what the pipeline has published under
``ML_DATA_DIR`` and writes nothing:

- ``/ml/``: champion and challenger with their holdout metrics beside the baselines, every
  registered version, the alias audit log, the latest drift and backtest reports, and a
  date picker for the predictions.
- ``/ml/models/<version>``: a version's model card, rendered from the registry.
- ``/ml/compare?first=<version>&second=<version>``: two versions side by side.
- ``/ml/predictions?date=YYYY-MM-DD``: a preview of that date's prediction partition.
- ``/ml/reports/<path>``: a file from the reports folder, and from nowhere else.
- ``/ml/dbt-docs``: the dbt project's docs (models, columns, tests, lineage graph).

Every page starts with the way back to the overview, the pages the pipeline wrote
(reports, model cards) included: the view adds it as it serves them.

Every route requires the login of the rest of the UI (the ``_token`` cookie the UI sets,
or a bearer token from ``POST /auth/token``); a browser without it is sent to the login
page. Its pages are templates of ``ml.html`` (every value shown is escaped), and every
page may be framed only by the UI itself, is never cached and sends no referrer elsewhere. Each section of a page reads its
own files and degrades on its own: one unreadable file shows as a line naming it, not as
an error for the whole page. Errors are pages with a way back, not JSON.
Nothing heavy is imported here: the API server, scheduler and workers all load plugins.
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import UndefinedError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

URL_PREFIX = "/ml"
_BODY = re.compile(r"<body(\s[^>]*)?>", re.IGNORECASE)
PREVIEW_ROWS = 50
AUDIT_ROWS = 30
BACKTEST_REPORTS = 10
DRIFT_DAYS = 60  # the drift heatmap's last days on file
DRIFT_SERIES = 25  # and its series at most, the most often drifted first
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
# dbt's docs are an app of dbt's own (AngularJS, inlined with the manifest and catalog
# into one page): its scripts run, and it still may fetch nothing from anywhere.
# Sandboxed too: its scripts run in an origin of their own, so they cannot reach the UI
# around them (its cookies, its API, its window).
DBT_DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src 'self' data:; font-src data:; frame-ancestors 'self'; "
    "form-action 'none'; base-uri 'none'; sandbox allow-scripts",
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


def _page(template: str, title: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page of the view: ``view/<template>`` with the view's navigation, as HTML."""
    from ml.html import render

    page = render(f"view/{template}", title=title, prefix=URL_PREFIX, **context)
    return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)


def _with_navigation(page: str) -> str:
    """A page the pipeline wrote (a report, a model card), with the view's navigation at
    the top of its body: on disk it stands alone, here it leads back to the overview."""
    from ml.html import render

    navigation = render("view/navigation.html", prefix=URL_PREFIX)
    return _BODY.sub(lambda m: f"{m.group(0)}\n{navigation}", page, count=1)


class _HeadAsGet:
    """HEAD answered as GET without its body (FastAPI's routes answer GET only, and
    HEAD got 405): link checkers and monitors ask with HEAD."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


app.add_middleware(_HeadAsGet)

# Airflow's answer to a token cookie that is not one of its own (forged, of another
# secret, cut short): the browser holding it has no login either.
_INVALID_TOKEN = "Invalid JWT token"


@app.exception_handler(StarletteHTTPException)
def _error_page(request: Request, exc: StarletteHTTPException):
    """Errors as pages with a way back; a browser that is not logged in (no token, an
    expired one, or one that is not a token of this server) goes to the login."""
    not_logged_in = exc.status_code == 401 or (
        exc.status_code == 403 and exc.detail == _INVALID_TOKEN
    )
    if not_logged_in and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(_login_url(request), status_code=303, headers=PRIVATE_HEADERS)
    title = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(
        exc.status_code, "Error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else title
    return _page("message.html", title, exc.status_code, heading=title, detail=detail)


@app.exception_handler(RequestValidationError)
def _bad_request_page(request: Request, exc: RequestValidationError) -> HTMLResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ())[1:])}: {error.get('msg', '')}"
        for error in exc.errors()
    )
    return _page("message.html", "Bad request", 422, heading="Bad request", detail=problems)


def _login_url(request: Request) -> str:
    """The auth manager's login page, coming back here afterwards."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=str(request.url))
    except Exception:  # no auth manager in this process (tests): the simple one's page
        return f"/auth/login?next={quote(str(request.url), safe='')}"


# A file that lacks what its page needs: a missing key, to the code or to a template.
SECTION_ERRORS = (LookupError, OSError, ValueError, TypeError, KeyError, UndefinedError)


def _section(load: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """A section's data as ``{"data": ...}``, or ``{"error": ...}``: one line naming what
    it could not read, shown in place of that section alone."""
    try:
        return {"data": load(*args), "error": None}
    except SECTION_ERRORS as exc:  # the package's errors derive from these too
        log.warning("ML view: %s unavailable: %s", load.__name__, exc)
        return {"data": None, "error": _one_line(exc)}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if "/" in text else f"{type(exc).__name__}: {text}"


def _serving(cfg) -> list[dict[str, Any]]:
    """Champion and challenger, each with its holdout metrics beside the baselines, or
    the line naming what could not be read."""
    from ml.queries import serving_models

    return [
        {**card, "error": card["error"] and _one_line(card["error"])}
        for card in serving_models(cfg)
    ]


def _versions(cfg) -> list[dict[str, Any]]:
    """Every registered version with its holdout metrics beside the heuristic's."""
    from ml.queries import model_versions

    rows = []
    for version in model_versions(cfg):
        row = {**version, "aliases": ", ".join(version["aliases"])}
        if version["error"] is not None:
            row["error"] = _one_line(version["error"])
        else:
            h = version["holdout"]
            row["metrics"] = (h["log_loss"], h["heuristic_log_loss"], h["auc"], h["heuristic_auc"])
        rows.append(row)
    return rows


def _audit(cfg) -> list[list[Any]]:
    from ml.queries import alias_history

    return [
        [e["at"] or "", e["alias"] or "", e["from"] or "none", e["to"] or "", e["reason"] or ""]
        for e in alias_history(cfg, limit=AUDIT_ROWS)
    ]


def _late_runs(cfg) -> dict[str, Any]:
    """The daily runs that missed their deadline, newest first, and the deadline."""
    from ml.queries import deadline_misses

    rows = [
        [
            m.get("run_id"),
            m.get("flight_date"),
            m.get("queued_at"),
            m.get("deadline_at"),
            m.get("state"),
        ]
        for m in deadline_misses(cfg, limit=AUDIT_ROWS)
    ]
    return {"rows": rows, "minutes": cfg.daily_deadline_minutes}


def _reports(cfg) -> list[dict[str, str]]:
    """The latest reports, each as ``{"kind", "path" (under the reports folder), "note"}``."""
    from ml.queries import latest_reports

    notes = {"data validation": " (every run of the expectation suites)"}
    return [
        {
            "kind": r["kind"],
            "path": r["path"].relative_to(cfg.paths.reports).as_posix(),
            "note": notes.get(r["kind"], ""),
        }
        for r in latest_reports(cfg, backtests=BACKTEST_REPORTS)
    ]


def _performance(cfg, days: list[dt.date]) -> dict[str, str] | None:
    """The champion's estimated and realized log loss (beside the prior rate's) and AUC
    over the days on file, as two charts; None before any day was monitored."""
    from ml import charts
    from ml.io import has_files
    from ml.queries import performance_by_day

    if not has_files(cfg.paths.monitoring_glob("performance")):
        return None
    by_kind = performance_by_day(cfg, days)
    dates = [day.isoformat() for day in days]
    estimated, realized = by_kind["estimated"], by_kind["realized"]
    loss = {
        "estimated": estimated["log_loss"],
        "realized": realized["log_loss"],
        "prior rate (realized)": realized["prior_log_loss"],
    }
    auc = {"estimated": estimated["auc"], "realized": realized["auc"]}
    return {
        "log_loss": charts.lines(dates, loss, y_title="log loss (lower is better)"),
        "auc": charts.lines(dates, auc, y_title="AUC (0.5: no better than chance)"),
    }


def _drift(cfg, days: list[dt.date]) -> dict[str, Any] | None:
    """The day's drift score of each series over the last days on file, as a heatmap of
    the series that drifted in them (most often first); None before any drift check."""
    from ml import charts
    from ml.io import has_files
    from ml.queries import drift_scores

    if not has_files(cfg.paths.monitoring_glob("drift")):
        return None
    scores = drift_scores(cfg, days[-DRIFT_DAYS:])
    shown = [day.isoformat() for day in days[-DRIFT_DAYS:]]
    if scores.empty:
        return None
    scores["date"] = scores["flight_date"].map(lambda d: d.isoformat()[:10])
    counts = (
        scores.groupby("feature")["is_drifted"].sum().sort_values(ascending=False, kind="stable")
    )
    drifted = [name for name, count in counts.items() if count > 0][:DRIFT_SERIES]
    summary = {
        "days": len(shown),
        "first": shown[0],
        "last": shown[-1],
        "series": len(counts),
        "drifted": int((counts > 0).sum()),
        "shown": len(drifted),
    }
    if not drifted:
        return {**summary, "chart": None}
    z = scores.pivot(index="feature", columns="date", values="z").reindex(
        index=drifted, columns=shown
    )
    flags = scores.pivot(index="feature", columns="date", values="is_drifted").reindex(
        index=drifted, columns=shown
    )
    chart = charts.heatmap(
        shown,
        drifted,
        [[None if v != v else float(v) for v in row] for row in z.to_numpy()],
        [[v is True for v in row] for row in flags.to_numpy().tolist()],
        value_title="drift score (z, clipped to -2..6)",
        flag_title="drifted",
        y_title="series",
        clip=(-2.0, 6.0),
    )
    return {**summary, "chart": chart}


@app.get("/", response_class=HTMLResponse)
def overview(cfg: SettingsDep) -> HTMLResponse:
    """Champion, challenger, performance and drift over the days on file, versions (and
    the comparison of two), audit log, reports and the predictions picker."""
    from ml.queries import prediction_dates

    days = prediction_dates(cfg)
    return _page(
        "overview.html",
        "ML",
        serving=_section(_serving, cfg),
        dates=[day.isoformat() for day in days],
        performance=_section(_performance, cfg, days),
        drift=_section(_drift, cfg, days),
        late=_section(_late_runs, cfg),
        reports=_section(_reports, cfg),
        versions=_section(_versions, cfg),
        audit=_section(_audit, cfg),
    )


@app.get("/compare", response_class=HTMLResponse)
def compare(
    cfg: SettingsDep,
    first: Annotated[str, Query(description="A registered model version.")],
    second: Annotated[str, Query(description="Another registered model version.")],
) -> HTMLResponse:
    """Two versions side by side: metrics, slices, parameters, features and inputs."""
    from ml.queries import compare_versions

    _known_versions(cfg, first, second)
    title = f"{first} beside {second}"
    try:
        comparison = compare_versions(cfg, first, second)
    except SECTION_ERRORS as exc:
        return _page("message.html", title, 500, heading=title, error=_one_line(exc))
    return _page("compare.html", title, heading=title, **comparison)


def _known_versions(cfg, *versions: str) -> None:
    """Not found unless every one of ``versions`` is registered (no other name reaches
    the registry's files)."""
    from ml import registry

    known = {meta["version"] for meta in registry.list_versions(cfg)}
    for version in versions:
        if version not in known:
            raise HTTPException(status_code=404, detail=f"no model version {version!r}")


@app.get("/models/{version}", response_class=HTMLResponse)
def model_card(version: str, cfg: SettingsDep) -> HTMLResponse:
    """A registered version's model card; any other name is not found."""
    from ml import registry
    from ml.model_card import render_html
    from ml.recalibration import revisions

    _known_versions(cfg, version)
    try:
        html = render_html(
            registry.load_metadata(cfg, version),
            registry.load_metrics(cfg, version),
            revisions(cfg, version),
        )
    except SECTION_ERRORS as exc:
        title = f"Model card {version}"
        return _page("message.html", title, 500, heading=title, error=_one_line(exc))
    return HTMLResponse(_with_navigation(html), headers=SECURITY_HEADERS)


@app.get("/predictions", response_class=HTMLResponse)
def predictions(
    cfg: SettingsDep,
    date: Annotated[dt.date, Query(description="The flight date, YYYY-MM-DD.")],
    role: Annotated[str, Query(pattern="^(champion|challenger)$")] = "champion",
    limit: Annotated[int, Query(ge=1, le=1000)] = PREVIEW_ROWS,
) -> HTMLResponse:
    """The riskiest flights of a date, and the count of each risk band."""
    from ml.errors import MLError
    from ml.queries import band_definitions, risk_bands, riskiest_flights, superseded

    title = f"Predictions for {date.isoformat()} ({role})"
    if not cfg.paths.predictions_partition(date).exists():
        raise HTTPException(status_code=404, detail=f"no predictions for {date.isoformat()}")
    other = "challenger" if role == "champion" else "champion"
    try:
        bands = [list(band) for band in risk_bands(cfg, date, role=role).itertuples(index=False)]
        frame = riskiest_flights(cfg, date, role=role, limit=limit)
        definitions = band_definitions(cfg, sorted(set(frame["model_version"])))
        has_other = not risk_bands(cfg, date, role=other).empty
    except MLError as exc:
        return _page("message.html", title, 500, heading=title, error=_one_line(exc))
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
    return _page(
        "predictions.html",
        f"Predictions {date.isoformat()}",
        heading=title,
        date=date.isoformat(),
        other=other if has_other else None,
        superseded=superseded(cfg, date),
        bands=bands,
        definitions=definitions,
        flights=[
            dict(zip(columns, row, strict=True)) for row in frame[columns].itertuples(index=False)
        ],
    )


def _dbt_docs(cfg) -> str:
    """The dbt docs page as dbt wrote it; not found before the first build wrote it."""
    try:
        return cfg.paths.dbt_docs.read_text(encoding="utf-8")
    except OSError:
        raise HTTPException(
            status_code=404,
            detail=f"no dbt docs yet at {cfg.paths.dbt_docs}: they are written after a build "
            "(`ml transform`, or any run of the DAGs)",
        ) from None


@app.get("/dbt-docs", response_class=HTMLResponse)
def dbt_docs(cfg: SettingsDep) -> HTMLResponse:
    """The dbt project's docs (models, columns, tests, the lineage graph), written after
    a build whenever the project changed, framed below the view's navigation (the app
    lays itself out over the whole page)."""
    _dbt_docs(cfg)
    framed = _page("dbt_docs.html", "dbt docs")
    csp = f"{SECURITY_HEADERS['Content-Security-Policy']}; frame-src 'self'"
    framed.headers["Content-Security-Policy"] = csp
    return framed


@app.get("/dbt-docs/index.html", response_class=HTMLResponse)
def dbt_docs_page(cfg: SettingsDep) -> HTMLResponse:
    """The docs' page itself, as dbt wrote it, sandboxed."""
    return HTMLResponse(_dbt_docs(cfg), headers=DBT_DOCS_HEADERS)


@app.get("/reports/{relative:path}")
def report_file(relative: str, cfg: SettingsDep) -> Response:
    """A file under the reports folder (an HTML page with the view's navigation added).
    Paths that leave it (``..``, absolute paths, symbolic links pointing outside) are not
    found."""
    root = cfg.paths.reports.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links
        raise HTTPException(status_code=404, detail="no such report") from None
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such report")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if media_type == "text/html":
        page = _with_navigation(target.read_text(encoding="utf-8", errors="replace"))
        return HTMLResponse(page, headers=SECURITY_HEADERS)
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
