"""`codeduel view`: a Starlette app over one run store, opened read-only for each request, and
the uvicorn server that serves it on loopback."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeduel.errors import UserError
from codeduel.report import (
    CostSettings,
    build_report,
    html_duel_table,
    html_figures,
    html_run_view,
    time_spreads,
)
from codeduel.store import Run, Store
from codeduel.view._data import (
    run_by_id,
    run_progress,
    sample_record,
    system_progress,
    task_grid,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["bind", "create_app", "serve"]

HOST = "127.0.0.1"

# The page's own script and style only: nothing from elsewhere, and nothing inline, so an
# answer that slipped through escaping still could not run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def create_app(db: Path, costs: CostSettings | None = None) -> Starlette:
    """The app over the store at `db`; it refuses (StoreError) a store it cannot read."""
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    costs = costs or CostSettings()
    # Fails now, with one sentence, if the store is missing or unreadable.
    Store(db, read_only=True).close()

    env = Environment(
        loader=PackageLoader("codeduel.view"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["secs"] = _fmt_s
    env.filters["pct"] = _pct

    def opened() -> AbstractContextManager[Store]:
        # A connection per request: each sees the store as last committed.
        return Store(db, read_only=True)

    def page(name: str, **context: Any) -> Response:
        html = env.get_template(name).render(db=str(db), **context)
        return HTMLResponse(html, headers={"Content-Security-Policy": _CSP})

    def the_run(store: Store, request: Request) -> Run:
        run = run_by_id(store, int(request.path_params["run_id"]))
        if run is None:
            raise HTTPException(404, "no such run")
        return run

    def runs(request: Request) -> Response:
        with opened() as store:
            listed = [(r, run_progress(store, r)) for r in reversed(store.runs())]
        return page("runs.html.j2", runs=listed)

    def runs_json(request: Request) -> Response:
        with opened() as store:
            body = [
                {"id": r.id, "name": r.name, "status": r.status, **run_progress(store, r).as_json()}
                for r in store.runs()
            ]
        return JSONResponse(body)

    def run_page(request: Request) -> Response:
        with opened() as store:
            run = the_run(store, request)
            report = build_report(store, run, costs)
            figures = html_figures([report], {run.name: time_spreads(store, run)})
            context = {
                "run": run,
                "progress": run_progress(store, run),
                "systems": system_progress(store, run),
                "section": html_run_view(report, costs.local),
                # The plots are markup built by report's _svg, which escapes every string.
                "figures": [(f, Markup(f.svg)) for f in figures],
            }
        return page("run.html.j2", **context)

    def run_json(request: Request) -> Response:
        with opened() as store:
            run = the_run(store, request)
            body = {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                **run_progress(store, run).as_json(),
                "systems": [
                    {"model": m, "strategy": s, **p.as_json()}
                    for m, s, p in system_progress(store, run)
                ],
            }
        return JSONResponse(body)

    def tasks_page(request: Request) -> Response:
        with opened() as store:
            run = the_run(store, request)
            grid = task_grid(store, [run])
        return page("tasks.html.j2", runs=[run], grid=grid)

    def chosen(store: Store, request: Request) -> list[Run]:
        """The runs named by `?runs=ID&runs=ID…`, oldest first."""
        try:
            ids = [int(v) for v in request.query_params.getlist("runs")]
        except ValueError:
            raise HTTPException(400, "runs are chosen by their numbers") from None
        if not ids:
            raise HTTPException(400, "choose the runs to compare on the runs page")
        found = [run_by_id(store, i) for i in dict.fromkeys(ids)]
        if None in found:
            raise HTTPException(404, "no such run")
        return sorted((r for r in found if r is not None), key=lambda r: r.id)

    def compare_page(request: Request) -> Response:
        with opened() as store:
            runs = chosen(store, request)
            reports = [build_report(store, r, costs) for r in runs]
            spreads = {r.name: time_spreads(store, r) for r in runs}
            figures = html_figures(reports, spreads)
            context = {
                "runs": runs,
                "duel": html_duel_table(reports),
                "sections": [html_run_view(r, costs.local) for r in reports],
                "figures": [(f, Markup(f.svg)) for f in figures],
            }
        return page("compare.html.j2", **context)

    def compare_tasks_page(request: Request) -> Response:
        with opened() as store:
            runs = chosen(store, request)
            grid = task_grid(store, runs)
        return page("tasks.html.j2", runs=runs, grid=grid)

    def sample_page(request: Request) -> Response:
        with opened() as store:
            record = sample_record(
                store, int(request.path_params["sample_id"]), costs.prices, costs.local
            )
            if record is None:
                raise HTTPException(404, "no such sample")
            run = run_by_id(store, record["run_id"])
        return page("sample.html.j2", run=run, s=record)

    def not_found(request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", "not found")
        code = getattr(exc, "status_code", 404)
        html = env.get_template("error.html.j2").render(db=str(db), detail=detail, code=code)
        return HTMLResponse(html, status_code=code, headers={"Content-Security-Policy": _CSP})

    routes = [
        Route("/", runs),
        Route("/api/runs", runs_json),
        Route("/runs/{run_id:int}", run_page),
        Route("/api/runs/{run_id:int}", run_json),
        Route("/runs/{run_id:int}/tasks", tasks_page),
        Route("/compare", compare_page),
        Route("/compare/tasks", compare_tasks_page),
        Route("/samples/{sample_id:int}", sample_page),
        Mount("/static", StaticFiles(packages=[("codeduel.view", "static")]), name="static"),
    ]
    # Only these Host headers: a web page that rebinds its own name to 127.0.0.1 cannot read
    # the store through the visitor's browser.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])]
    handlers: dict[Any, Callable[..., Any]] = {HTTPException: not_found}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


def bind(port: int) -> socket.socket:
    """A listening socket on loopback; a port in use is the user's to change."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {HOST} is in use; pick another with --port") from None
        raise UserError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(db: Path, port: int, announce: Callable[[str], None]) -> None:
    """Serve the view of `db` on 127.0.0.1:`port` until interrupted (Ctrl-C)."""
    import uvicorn

    app = create_app(db)
    sock = bind(port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    announce(f"codeduel view: {db} (read-only) at {url}; Ctrl-C to stop")
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
