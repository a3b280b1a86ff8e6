"""`codeduel view`: the real server on loopback, read in a real headless Chromium while the test
writes to the store, as a run would."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from codeduel.cli import main
from codeduel.records import SampleRecord
from codeduel.store import Store
from tests.report.chromium import chromium_path
from tests.report.samples import CLOUD, LOCAL, hybrid_sample, make_sample
from tests.view.browser import Tab, open_tab

# What a model may answer and a program may print: markup that would run if not escaped.
HOSTILE = '</pre><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
EVIL_MODEL = 'openai/<b onmouseover="window.pwned = 3">x</b>'
EVIL_TASK = "T/<script>window.pwned = 4</script>"
TASKS = [EVIL_TASK] + [f"T/{i}" for i in range(1, 8)]
SHOTS = (
    Path(os.environ.get("CODEDUEL_VIEW_SHOTS", ""))
    if os.environ.get("CODEDUEL_VIEW_SHOTS")
    else None
)


@dataclass
class Served:
    db: Path
    origin: str
    done_run: int


def _hostile_sample(task: str, status: str) -> SampleRecord:
    """The markup model's sample: answer, extracted code and the tests' output all markup."""
    sample = make_sample(EVIL_MODEL, task, status, answer=HOSTILE, code=HOSTILE)
    attempt = sample.attempts[0]
    hidden = replace(attempt.executions[0], detail=HOSTILE)
    return replace(sample, attempts=(replace(attempt, executions=(hidden,)),))


def _fill(db: Path) -> int:
    """A finished run: local, cloud, a model whose name is markup answering markup, and the
    local model's repair samples (visible feedback on each attempt)."""
    with Store(db) as store:
        models = [LOCAL, CLOUD, EVIL_MODEL]
        run = store.create_run("done", "humaneval", "abc", {"models": models, "samples": 1}, {})
        store.add_model(run.id, LOCAL, {"local": True})
        store.add_model(run.id, CLOUD, {"local": False})
        store.add_model(run.id, EVIL_MODEL, {"local": False})
        store.add_tasks(run.id, [(t, "f", 3.0) for t in TASKS])
        for i, task in enumerate(TASKS):
            store.record_sample(run.id, make_sample(LOCAL, task, "passed" if i % 3 else "failed"))
            cloud = "error" if i == 5 else "passed"
            store.record_sample(run.id, make_sample(CLOUD, task, cloud, tokens=(300, 150)))
            store.record_sample(run.id, _hostile_sample(task, "passed" if i % 2 else "failed"))
            hidden = ["failed", "passed"] if i % 2 else ["failed", "failed", "failed"]
            store.record_sample(run.id, hybrid_sample(LOCAL, "repair", task, hidden))
        store.set_run_status(run.id, "complete")
        return run.id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("view") / "runs.db"
    done_run = _fill(db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeduel", "view", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield Served(db, found.group(0), done_run)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def tab(served: Served) -> Iterator[Tab]:
    if chromium_path() is None:
        pytest.skip("chromium is not installed")
    with open_tab(served.origin) as tab:
        yield tab


def _shot(tab: Tab, tmp_path: Path, name: str) -> None:
    tab.screenshot(tmp_path / name, height=1400)
    assert (tmp_path / name).stat().st_size > 10_000
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(SHOTS / name, height=1100)


def _grid_visible(tab: Tab) -> list[str]:
    return tab.eval(
        "[...document.querySelectorAll('table.grid tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.dataset.task)"
    )


def test_each_page_loads_clean_and_shows_what_is_stored(
    served: Served, tab: Tab, tmp_path: Path
) -> None:
    run = served.done_run
    tab.goto("/")
    assert tab.eval(f"{_js_row(str(run))}.querySelector('th').textContent") == "done"
    # 8 tasks × 3 models (the config lists the systems the run was started with) + repair.
    assert (
        tab.eval(f"document.querySelector('tr[data-id=\"{run}\"] [data-field=done]').textContent")
        == "32 / 24"
    )
    _shot(tab, tmp_path, "runs.png")
    assert tab.problems() == []

    tab.goto(f"/runs/{run}")
    systems = tab.eval(
        "[...document.querySelectorAll('table.progress tbody th')].map(e => e.textContent)"
    )
    assert systems == ["whole run", LOCAL, CLOUD, EVIL_MODEL, f"{LOCAL} (repair)"]
    # The report's duel table, one row per system, and its plots, drawn by report/_svg.
    assert tab.eval("document.querySelectorAll('table.duel tbody tr').length") == 4
    plots = tab.eval("[...document.querySelectorAll('svg.plot')].map(e => e.dataset.plot)")
    assert {"latency", "attempts"} <= set(plots)
    _shot(tab, tmp_path, "run.png")
    assert tab.problems() == []

    tab.goto(f"/runs/{run}/tasks")
    assert _grid_visible(tab) == TASKS
    cells = tab.eval(
        "[...document.querySelectorAll('tr[data-task=\"T/5\"] td')].map(td => td.textContent)"
    )
    assert cells == ["passed", "error", "passed", "passed"]
    _shot(tab, tmp_path, "tasks.png")
    assert tab.problems() == []

    # The hostile model's sample: its answer, code and test output are text, never markup.
    href = tab.eval(
        f"document.querySelector('tr[data-task=\"{EVIL_TASK}\"] td:nth-of-type(3) a')"
        ".getAttribute('href')"
    )
    tab.goto(href)
    assert tab.eval("document.querySelector('pre.answer').textContent") == HOSTILE
    assert tab.eval("document.querySelector('pre.output').textContent") == HOSTILE
    assert tab.eval("document.querySelector('h1').textContent").startswith(EVIL_TASK)
    assert tab.eval("document.querySelectorAll('script').length") == 1
    assert tab.eval("document.querySelectorAll('main img, main b').length") == 0
    assert tab.eval("window.pwned === undefined")
    assert tab.problems() == []

    # Its next task's sample, and back.
    here = tab.eval("location.pathname")
    assert tab.eval("document.querySelector('a[rel=prev]')") is None
    tab.goto(tab.eval("document.querySelector('a[rel=next]').getAttribute('href')"))
    assert tab.eval("document.querySelector('h1').textContent").startswith("T/1 ")
    assert tab.eval("document.querySelector('p.system').textContent").startswith(EVIL_MODEL)
    tab.goto(tab.eval("document.querySelector('a[rel=prev]').getAttribute('href')"))
    assert tab.eval("location.pathname") == here
    assert tab.problems() == []

    # A repair sample: every attempt with its visible feedback and hidden outcome.
    tab.goto(f"/runs/{run}/tasks")
    href = tab.eval(
        "document.querySelector('tr[data-task=\"T/1\"] td:nth-of-type(4) a').getAttribute('href')"
    )
    tab.goto(href)
    headings = tab.eval(
        "[...document.querySelectorAll('section.attempt h4')].map(e => e.textContent.trim())"
    )
    assert [h.split()[0] for h in headings if not h.startswith(("Prompt", "Raw"))] == [
        "Extracted",
        "Visible",
        "Hidden",
        "Extracted",
        "Visible",
        "Hidden",
    ]
    assert (
        tab.eval("document.querySelector('section.attempt:last-of-type .tag').textContent")
        == "the answer"
    )
    _shot(tab, tmp_path, "sample.png")
    assert tab.problems() == []


def test_the_grid_filters_by_search_and_outcome(served: Served, tab: Tab) -> None:
    tab.goto(f"/runs/{served.done_run}/tasks")
    tab.type_into("#search", "T/1")
    assert _grid_visible(tab) == ["T/1"]
    assert tab.eval("document.getElementById('count').textContent") == "1 of 8 tasks"
    assert tab.eval("location.search") == "?q=T%2F1"
    tab.eval("document.getElementById('search').value = ''")
    tab.type_into("#search", "")
    tab.eval("document.getElementById('search').dispatchEvent(new Event('input'))")
    tab.select("#outcome", "error")
    assert _grid_visible(tab) == _tasks_with(served, "status = 'error'") == ["T/5"]
    tab.select("#outcome", "passed")
    # Every system passed: local on i % 3, the hostile model on odd i, repair on odd i; the
    # cloud everywhere but T/5.
    assert _grid_visible(tab) == ["T/1", "T/7"]
    # The filter is in the address: a reload keeps it.
    tab.goto(f"/runs/{served.done_run}/tasks?show=failed&q=T/")
    assert tab.eval("document.getElementById('outcome').value") == "failed"
    failed = _tasks_with(served, "status IN ('failed', 'timeout') AND model_error = 0")
    assert _grid_visible(tab) == failed == [EVIL_TASK, "T/2", "T/3", "T/4", "T/6"]
    assert tab.problems() == []


def _tasks_with(served: Served, condition: str) -> list[str]:
    """Tasks of the finished run with a sample where `condition` holds, straight from SQL."""
    with Store(served.db, read_only=True) as store:
        rows = store.db.execute(
            "SELECT DISTINCT s.task_id FROM samples s JOIN tasks t ON t.run_id = s.run_id "
            f"AND t.task_id = s.task_id WHERE s.run_id = ? AND {condition} ORDER BY t.position",
            (served.done_run,),
        )
        return [r[0] for r in rows]


def _cell(tab: Tab, row: str, field: str) -> str:
    return tab.eval(
        f"(() => {{ const r = [...document.querySelectorAll('tr[data-id]')]"
        f".find(r => r.dataset.id === {row!r});"
        f" return r ? r.querySelector('[data-field={field}]').textContent : null; }})()"
    )


def test_live_progress_advances_while_the_run_writes(served: Served, tab: Tab) -> None:
    with Store(served.db) as store:
        run = store.create_run("live", "humaneval", "abc", {"models": [LOCAL, CLOUD]}, {})
        store.add_tasks(run.id, [(f"L/{i}", "f", 3.0) for i in range(6)])
        for model, status in ((LOCAL, "passed"), (LOCAL, "failed")):
            store.record_sample(run.id, make_sample(model, f"L/{status}", status))
        tab.goto("/")
        row = str(run.id)
        assert _cell(tab, row, "done") == "2 / 12"
        assert _cell(tab, row, "pass_rate") == "50.0%"
        for i in range(4):
            store.record_sample(run.id, make_sample(CLOUD, f"L/{i}", "passed"))
        tab.wait_until(f"{_js_cell(row, 'done')} === '6 / 12'")
        assert _cell(tab, row, "pass_rate") == "83.3%"
        assert _cell(tab, row, "samples_per_min").endswith("/min")
        assert _cell(tab, row, "eta_s") != "–"
        assert tab.eval(f"{_js_row(row)}.querySelector('progress').value") == 6

        tab.goto(f"/runs/{run.id}")
        assert _cell(tab, "run", "done") == "6 / 12"
        store.record_sample(run.id, make_sample(LOCAL, "L/4", "passed"))
        tab.wait_until(f"{_js_cell(f'{LOCAL} single', 'done')} === '3 / 6'")
        assert _cell(tab, "run", "done") == "7 / 12"
        assert tab.wait_until(
            "document.querySelector('[data-field=stale]').hidden === false"
            " && document.querySelector('[data-field=stale]').textContent"
        ).startswith("1 samples stored since")
        store.set_run_status(run.id, "complete")
        tab.wait_until(f"{_js_cell('run', 'status')} === 'complete'")
    assert tab.problems() == []


def _js_row(row: str) -> str:
    return f"[...document.querySelectorAll('tr[data-id]')].find(r => r.dataset.id === {row!r})"


def _js_cell(row: str, field: str) -> str:
    return f"{_js_row(row)}.querySelector('[data-field={field}]').textContent"


def test_the_store_is_never_written(served: Served) -> None:
    before = hashlib.sha256(served.db.read_bytes()).hexdigest()
    for path in ("/", "/api/runs", f"/runs/{served.done_run}", f"/runs/{served.done_run}/tasks"):
        with urllib.request.urlopen(served.origin + path, timeout=30) as response:
            assert response.status == 200
            if not path.startswith("/api/"):
                # No inline script or style may run, whatever a page holds.
                csp = response.headers["Content-Security-Policy"]
                assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert hashlib.sha256(served.db.read_bytes()).hexdigest() == before
    with Store(served.db, read_only=True) as store, pytest.raises(sqlite3.OperationalError):
        store.db.execute("DELETE FROM runs")


def test_a_host_other_than_loopback_is_refused(served: Served) -> None:
    """A page on another site whose name it rebinds to 127.0.0.1 reads nothing."""
    request = urllib.request.Request(served.origin + "/api/runs", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400


def test_bad_input_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(SystemExit) as exited:
        main(["view", "--db", str(missing)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"codeduel: error: no run store at {missing}\n"
    assert not missing.exists()

    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(SystemExit) as exited:
        main(["view", "--db", str(foreign)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"codeduel: error: {foreign} is not a codeduel run store\n"

    db = tmp_path / "runs.db"
    Store(db).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            main(["view", "--db", str(db), "--port", str(port)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"codeduel: error: port {port} on 127.0.0.1 is in use; pick another with --port\n"


def test_help_stays_light() -> None:
    code = (
        "import sys\nfrom codeduel.cli import main\n"
        "try:\n    main(['view', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'codeduel.view') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "127.0.0.1" in out.stdout
    assert out.stdout.strip().endswith("[]")


def test_the_pages_templates_and_assets_are_package_data() -> None:
    """A wheel carries what the pages need that is not Python."""
    root = Path(__file__).parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    package = root / "src/codeduel"
    declared = {
        path
        for pattern in config["tool"]["setuptools"]["package-data"]["codeduel"]
        for path in package.glob(pattern)
    }
    data = {
        path
        for path in (package / "view").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    }
    assert {package / "view/static/view.js", package / "view/templates/sample.html.j2"} <= data
    assert data <= declared, sorted(str(p.relative_to(package)) for p in data - declared)


def test_runs_ticked_on_the_runs_page_are_compared(served: Served, tab: Tab) -> None:
    with Store(served.db) as store:
        other = store.create_run("other", "humaneval", "abc", {"models": [CLOUD]}, {})
        store.add_tasks(other.id, [(t, "f", 3.0) for t in TASKS[:4]])
        for task in TASKS[:4]:
            store.record_sample(other.id, make_sample(CLOUD, task, "failed"))
    tab.goto("/")
    for run in (served.done_run, other.id):
        tab.eval(f"document.querySelector('input[name=runs][value=\"{run}\"]').click()")
    tab.eval("document.querySelector('form.compare button').click()")
    tab.wait_until("location.pathname === '/compare' && document.readyState === 'complete'")
    # Ticked on a page that lists the newest first; compared in the order they ran.
    assert tab.eval("location.search") == f"?runs={other.id}&runs={served.done_run}"
    headings = tab.eval(
        "[...document.querySelectorAll('details.run .run-heading')].map(h => h.textContent)"
    )
    assert [h.split(" — ")[0] for h in headings] == ["done", "other"]
    assert tab.eval("document.querySelectorAll('details.run table.duel').length") == 2
    # One table of all five systems, each named with its run.
    systems = tab.eval(
        "[...document.querySelectorAll('table.duel.all tbody th')].map(h => h.textContent)"
    )
    assert systems == [f"{s} · done" for s in (LOCAL, CLOUD, EVIL_MODEL, f"{LOCAL} (repair)")] + [
        f"{CLOUD} · other"
    ]
    # One set of plots over both runs: each system labelled with its run.
    labels = tab.eval(
        "[...document.querySelectorAll('svg[data-plot=latency] [data-label]')]"
        ".map(e => e.dataset.label)"
    )
    assert f"{CLOUD} · other" in labels and f"{CLOUD} · done" in labels

    tab.eval("document.querySelector('a.button').click()")
    tab.wait_until("location.pathname === '/compare/tasks' && document.readyState === 'complete'")
    heads = tab.eval(
        "[...document.querySelectorAll('table.grid thead th .run-name')].map(e => e.textContent)"
    )
    assert heads == ["done"] * 4 + ["other"]
    assert _grid_visible(tab) == TASKS
    tab.select("#outcome", "pending")
    # The other run answered only the first four tasks.
    assert _grid_visible(tab) == TASKS[4:]
    tab.select("#outcome", "all")
    assert _grid_visible(tab) == TASKS
    assert tab.problems() == []

    tab.goto("/compare?runs=999")
    assert tab.eval("document.querySelector('h1').textContent") == "404"
    tab.problems()  # the 404's own console line


def test_a_task_with_several_samples_has_a_mark_for_each(served: Served, tab: Tab) -> None:
    with Store(served.db) as store:
        run = store.create_run("sampled", "humaneval", "abc", {"models": [LOCAL], "samples": 3}, {})
        store.add_tasks(run.id, [("S/0", "f", 3.0)])
        for index, status in enumerate(["passed", "failed", "timeout"]):
            sample = replace(make_sample(LOCAL, "S/0", status), sample_index=index)
            store.record_sample(run.id, sample)
    tab.goto(f"/runs/{run.id}/tasks")
    marks = tab.eval(
        "[...document.querySelectorAll('table.grid td a.cell')]"
        ".map(a => [a.textContent, a.title, a.classList.contains('mini')])"
    )
    assert marks == [
        ["P", "sample 0: passed", True],
        ["F", "sample 1: failed", True],
        ["T", "sample 2: timeout", True],
    ]
    tab.select("#outcome", "disagree")
    assert _grid_visible(tab) == ["S/0"]
    assert tab.problems() == []
