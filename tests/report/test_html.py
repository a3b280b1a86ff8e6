"""`report --format html`: one self-contained page whose tables and plots agree with the store,
checked as markup and in a real headless Chromium."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from codeduel.report import RunReport, build_report, render_html, time_spreads
from codeduel.store import Run, Store
from tests.report.chromium import chromium_path, load_page
from tests.report.samples import CLOUD, LOCAL, hybrid_sample, make_sample, report_costs

PLOTS = ["frontier", "attempts", "budget", "latency", "throughput", "memory"]
# A model name and a task id that are markup, as a store may hold them.
EVIL = 'openai/<img src=x onerror="alert(1)">&co'
EVIL_TASK = "T/<script>alert(2)</script>"


class _Page(HTMLParser):
    """The page's tables (cell texts, by table class), its svg plots' data-plot names, every
    element with its attributes and the plot it is in, and the text of each <pre>."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.plots: list[str] = []
        self.elements: list[tuple[str, dict[str, str], str]] = []
        self._plot = ""
        self.pres: list[str] = []
        self._cell: list[str] | None = None
        self._pre: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "svg" and "plot" in found.get("class", "").split():
            self.plots.append(found["data-plot"])
            self._plot = found["data-plot"]
        self.elements.append((tag, found, self._plot))
        if tag == "table":
            self.tables.append((found.get("class", ""), []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "pre":
            self._pre = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._plot = ""
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "pre" and self._pre is not None:
            self.pres.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data: str) -> None:
        for sink in (self._cell, self._pre):
            if sink is not None:
                sink.append(data)

    def table(self, kind: str) -> dict[str, list[str]]:
        """Rows of the first table of class `kind`, by the first cell, header row included."""
        rows = next(rows for cls, rows in self.tables if cls == kind)
        return {row[0]: row for row in rows}

    def marks(self, plot: str, tag: str, cls: str) -> list[dict[str, str]]:
        """Elements `tag` of class `cls` in the svg plot `plot`, in order."""
        return [
            a
            for t, a, p in self.elements
            if p == plot and t == tag and cls in a.get("class", "").split()
        ]

    def labelled(self, plot: str, tag: str, cls: str) -> dict[str, dict[str, str]]:
        return {a["data-label"]: a for a in self.marks(plot, tag, cls)}


def _render(store: Store, runs: list[Run]) -> str:
    costs = report_costs()
    reports: list[RunReport] = [build_report(store, run, costs) for run in runs]
    return render_html(reports, {run.name: time_spreads(store, run) for run in runs}, costs.local)


def _scored(store: Store, run: Run, model: str, strategy: str = "single") -> tuple[int, int]:
    """(passed, scored) straight from the samples table."""
    row = store.db.execute(
        "SELECT SUM(status = 'passed'), COUNT(*) FROM samples WHERE run_id = ? AND model = ? "
        "AND strategy = ? AND model_error = 0",
        (run.id, model, strategy),
    ).fetchone()
    return int(row[0]), int(row[1])


def _times(store: Store, run: Run, model: str, strategy: str = "single") -> list[float]:
    return [
        r[0]
        for r in store.db.execute(
            "SELECT generation_s + execution_s FROM samples WHERE run_id = ? AND model = ? "
            "AND strategy = ? AND model_error = 0",
            (run.id, model, strategy),
        )
    ]


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Store, Run]:
    """One run with a local model (memory measured), a cloud one, a model whose name is markup
    (no price), and the local model's repair and resample samples; made with --unsafe-sandbox."""
    store = Store(tmp_path / "mixed.db")
    provenance = {"sandbox": {"unsafe_sandbox": True, "missing": ["pid namespace"]}}
    run = store.create_run(
        "mixed", "humaneval", "abc", {"generation": {"max_tokens": 64}}, provenance
    )
    store.add_model(run.id, LOCAL, {"local": True})
    store.add_model(run.id, CLOUD, {"local": False})
    store.add_model(run.id, EVIL, {"local": False})
    for i in range(8):
        task = EVIL_TASK if i == 0 else f"T/{i}"
        local = "passed" if i % 3 == 0 else "failed"
        store.record_sample(
            run.id,
            make_sample(LOCAL, task, local, seconds=1.0 + i, peak_rss_bytes=(900 + i) * 2**20),
        )
        cloud = "failed" if i == 7 else "passed"
        store.record_sample(
            run.id, make_sample(CLOUD, task, cloud, tokens=(300, 150), seconds=0.5 + i / 4)
        )
        store.record_sample(run.id, make_sample(EVIL, task, "passed" if i % 2 else "failed"))
        # Repair fixes most tasks on its second or third try; resample rarely.
        repair = (
            ["failed", "passed"] if i % 2 else ["failed", "failed", "passed" if i else "failed"]
        )
        store.record_sample(run.id, hybrid_sample(LOCAL, "repair", task, repair))
        resample = ["failed", "failed", "passed" if i % 4 == 1 else "failed"]
        store.record_sample(run.id, hybrid_sample(LOCAL, "resample", task, resample))
    store.set_run_status(run.id, "complete")
    return store, run


def test_duel_tables_match_the_store(duel: tuple[Store, Run]) -> None:
    store, run = duel
    text = _render(store, [run])
    page = _Page(text)
    main = page.table("duel")
    assert main["System"][:3] == ["System", "Pass@1 % (95% CI)", "Passed"]
    for model in (LOCAL, CLOUD):
        passed, scored = _scored(store, run, model)
        row = main[model]
        assert row[2] == f"{passed}/{scored}"
        assert row[1].startswith(f"{100 * passed / scored:.1f} (")
        latency = main["System"].index("Request latency p50 / p95 s")
        assert row[latency].startswith(f"{statistics.median(_times(store, run, model)):.2f} / ")
    # The failed cloud call is not scored: 5 of 6.
    assert main[CLOUD][2] == "5/6"
    cost = page.table("cost")
    assert cost[LOCAL][1] == "$500.00" and "problems/month" in cost[LOCAL][4]
    paired = page.table("paired")
    (pair,) = [row for key, row in paired.items() if key != "First"]
    assert pair[2:] == ["6", "3", "1", "0", "2", "0.5"]
    assert "only the second: T/2, T/3</li>" in text


def test_duel_table_shows_the_token_economy(economy: tuple[Store, Run]) -> None:
    store, run = economy
    text = _render(store, [run])
    main = _Page(text).table("duel")
    head = main["System"]
    tokens = head.index("Tokens out per problem mean / p50")
    share = head.index("Output in extracted code % (chars)")
    cells = {system: (row[tokens], row[share]) for system, row in main.items()}
    assert cells[LOCAL] == ("200 / 100", "60.0")
    assert cells[CLOUD] == ("150 / 150", "60.0")
    assert cells[f"{LOCAL} (repair)"] == ("83 / 50", "33.3")
    # Right-aligned as figures, with the unit explained under the table.
    assert '<td class="num">60.0</td>' in text and '<td class="num">83 / 50</td>' in text
    assert '<p class="note">Wall s per problem:' in text
    assert "Tokens per problem count every model call" in text


def _dominated(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    x, y = point
    return any(ox <= x and oy >= y and (ox, oy) != (x, y) for ox, oy in others)


def test_plots_escape_and_agree_with_the_store(mixed: tuple[Store, Run]) -> None:
    store, run = mixed
    text = _render(store, [run])
    page = _Page(text)
    assert page.plots == PLOTS
    # Markup from the store is text on the page, never elements.
    assert EVIL not in text and EVIL_TASK not in text
    assert "openai/&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;co" in text
    assert "T/&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert [t for t, _, _ in page.elements if t in ("img", "script")] == []
    # Nothing to fetch: links stay on the page, the one URL is the SVG namespace.
    assert {a["href"] for _, a, _ in page.elements if "href" in a} == {"#run-1"}
    assert not any("src" in a for _, a, _ in page.elements)
    assert text.count("http") == text.count('xmlns="http://www.w3.org/2000/svg"') == len(PLOTS)

    frontier = page.labelled("frontier", "circle", "point")
    assert set(frontier) == {LOCAL, CLOUD, f"{LOCAL} (repair)", f"{LOCAL} (resample)"}
    for label, strategy in ((LOCAL, "single"), (f"{LOCAL} (repair)", "repair")):
        passed, scored = _scored(store, run, LOCAL, strategy)
        assert float(frontier[label]["data-y"]) == pytest.approx(passed / scored)
    # Sonnet at $3 / $15 per Mtok: 300 tokens in and 150 out per problem.
    assert float(frontier[CLOUD]["data-x"]) == pytest.approx((300 * 3 + 150 * 15) / 1e6)
    # The name without a price is left off, and the page says so, escaped.
    assert "Not plotted, no pass@1 or no price: openai/&lt;img" in text
    xy = {k: (float(p["data-x"]), float(p["data-y"])) for k, p in frontier.items()}
    for label, point in frontier.items():
        on_frontier = not _dominated(xy[label], list(xy.values()))
        assert point["data-frontier"] == ("1" if on_frontier else "0"), label

    # Repair's curve: one marker per attempt, the last one its pass@1.
    repair = page.marks("attempts", "circle", "point")[:3]
    assert {p["data-label"] for p in repair} == {f"{LOCAL} (repair)"}
    assert repair[-1]["data-y"] == frontier[f"{LOCAL} (repair)"]["data-y"]
    assert page.table("hybrid")["System"][:4] == ["System", "after 1", "after 2", "after 3"]
    budgets = [float(p["data-x"]) for p in page.marks("budget", "circle", "point")]
    assert budgets == [32, 64, 128, 192] * 2

    boxes = page.labelled("latency", "g", "box")
    for model in (LOCAL, CLOUD, EVIL):
        times = _times(store, run, model)
        assert int(boxes[model]["data-n"]) == len(times)
        assert float(boxes[model]["data-median"]) == pytest.approx(statistics.median(times))
    # The duel table's latency p50 is the box's median.
    latency = page.table("duel")["System"].index("Request latency p50 / p95 s")
    median = float(boxes[LOCAL]["data-median"])
    assert page.table("duel")[LOCAL][latency].startswith(f"{median:.2f}")

    memory = page.labelled("memory", "rect", "bar")
    (peak,) = store.db.execute(
        "SELECT MAX(peak_rss_bytes) FROM samples WHERE run_id = ? AND model = ?", (run.id, LOCAL)
    ).fetchone()
    assert set(memory) == {LOCAL} and float(memory[LOCAL]["data-value"]) == peak / 2**20
    assert text.count(">not measured</text>") == 4
    speeds = page.labelled("throughput", "rect", "bar")
    # The system's aggregate output speed, not one stream's share of the engine.
    speed = build_report(store, run).rows[0].aggregate_tokens_per_s
    # (printed to six figures; this store's samples were written microseconds apart)
    assert speed is not None
    assert float(speeds[LOCAL]["data-value"]) == pytest.approx(speed, rel=1e-5)

    # Unsafe sandbox: a warning at the top, a badge on the run, the Markdown's note.
    assert page.marks("", "span", "unsafe") and len(page.marks("", "p", "unsafe")) == 2
    assert (
        "run mixed was made with --unsafe-sandbox; isolation layers missing: pid namespace" in text
    )
    (provenance,) = page.pres
    assert json.loads(unescape(provenance))["provenance"] == run.provenance
    assert page.marks("", "details", "provenance")


def test_a_cascade_is_priced_by_its_calls(tmp_path: Path) -> None:
    store = Store(tmp_path / "cascade.db")
    run = store.create_run("chain", "humaneval", "abc", {}, {})
    chain = f"{LOCAL} -> {CLOUD}"
    store.add_model(run.id, LOCAL, {"local": True})
    store.add_model(run.id, CLOUD, {"local": False})
    store.add_model(run.id, chain, {"chain": [LOCAL, CLOUD], "local": False})
    store.record_sample(run.id, hybrid_sample(chain, "cascade", "T/0", ["passed"], models=[LOCAL]))
    store.record_sample(
        run.id,
        hybrid_sample(chain, "cascade", "T/1", ["failed", "passed"], models=[LOCAL, CLOUD]),
    )
    page = _Page(_render(store, [run]))
    (point,) = page.marks("frontier", "circle", "point")
    assert point["data-label"] == f"{chain} (cascade)"
    # Two local calls of 1 s at 100 W and $0.2/kWh, one Sonnet call of 100 tokens in, 50 out.
    usd = 2 * 100 * 1.0 / 3600 / 1000 * 0.2 + (100 * 3 + 50 * 15) / 1e6
    assert float(point["data-x"]) == pytest.approx(usd / 2, rel=1e-5)
    assert float(point["data-y"]) == 1.0


def test_plots_without_data_say_so(duel: tuple[Store, Run]) -> None:
    store, run = duel
    text = _render(store, [run])
    page = _Page(text)
    assert page.plots == ["frontier", "latency", "throughput"]
    for plot in ("attempts", "budget", "memory"):
        (note,) = [a for _, a, _ in page.elements if a.get("data-plot") == plot]
        assert note["class"] == "no-data"
    assert "No data: no repair or resample run." in text


def test_several_runs_label_their_systems(mixed: tuple[Store, Run]) -> None:
    store, run = mixed
    other = store.create_run("second", "humaneval", "abc", {}, {})
    store.add_model(other.id, LOCAL, {"local": True})
    store.record_sample(other.id, make_sample(LOCAL, "T/1", "passed", seconds=3.0))
    page = _Page(_render(store, [run, other]))
    labels = set(page.labelled("frontier", "circle", "point"))
    assert {f"{LOCAL} · mixed", f"{LOCAL} · second", f"{LOCAL} (repair) · mixed"} <= labels
    assert [cls for cls, _ in page.tables].count("duel") == 2


def _codeduel(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "codeduel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def test_cli_writes_one_file_or_prints(duel: tuple[Store, Run], tmp_path: Path) -> None:
    store, _ = duel
    out = tmp_path / "out" / "report.html"
    common = ["report", "--format", "html", "--db", str(store.path)]
    assert _codeduel(*common, "--output", str(out)) == f"wrote {out}\n"
    printed = _codeduel(*common)
    assert printed == out.read_text(encoding="utf-8")
    assert printed.startswith("<!DOCTYPE html>") and _Page(printed).plots
    assert "[md|json|html]" in _codeduel("report", "--help")


needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not on PATH (apt-get install chromium)"
)

# What the browser built: the plots and their marks, and elements the page must not have.
_DOM = {
    "plots": "[...document.querySelectorAll('svg.plot')].map(s => s.dataset.plot)",
    "drawn": "[...document.querySelectorAll('svg.plot')].every(s => "
    "s.getBoundingClientRect().width > 300 && s.getBoundingClientRect().height > 100)",
    "points": "document.querySelectorAll('svg.plot circle.point').length",
    "injected": "document.querySelectorAll('img, script, iframe').length",
    "names": "[...document.querySelectorAll('table.duel tbody th')].map(t => t.textContent)",
}


@needs_chromium
def test_page_in_chromium(mixed: tuple[Store, Run], tmp_path: Path) -> None:
    """The screenshot stays in this test's tmp_path (pytest keeps the last few)."""
    store, run = mixed
    page = tmp_path / "report.html"
    page.write_text(_render(store, [run]), encoding="utf-8")
    shot = tmp_path / "report.png"
    seen = load_page(page, _DOM, screenshot=shot)
    assert seen.problems == []
    assert seen.external_requests == []
    assert seen.values["plots"] == PLOTS
    assert seen.values["drawn"] is True
    # The frontier (4 priced systems) and the attempt curves (3 repair, 3 resample markers),
    # and the budget curves (4 finite budgets, both sides).
    assert seen.values["points"] == 4 + 6 + 8
    assert seen.values["injected"] == 0
    assert EVIL in seen.values["names"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@needs_chromium
def test_chromium_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><svg class='plot'></svg>"
        "<script>console.error('logged on purpose')</script>"
        "<script>throw new Error('thrown on purpose')</script>"
        "<script>alert('opened on purpose')</script>"
        "<img src='http://127.0.0.1:9/pixel.png'></body></html>",
        encoding="utf-8",
    )
    seen = load_page(page, {"plots": "document.querySelectorAll('svg.plot').length"})
    assert any("console.error: logged on purpose" in p for p in seen.problems)
    assert any("uncaught exception" in p and "thrown on purpose" in p for p in seen.problems)
    assert "javascript dialog: opened on purpose" in seen.problems
    assert seen.external_requests == ["http://127.0.0.1:9/pixel.png"]
    assert seen.values["plots"] == 1


RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@needs_chromium
@pytest.mark.parametrize("page", sorted(RESULTS.glob("*.html")), ids=lambda p: p.name)
def test_published_reports_open_cleanly(page: Path) -> None:
    """The HTML reports of the measured runs in docs/results, as committed."""
    drawn = "[...document.querySelectorAll('svg.plot, p.no-data')].map(e => e.dataset.plot)"
    seen = load_page(page, {"plots": drawn, "svg": "document.querySelectorAll('svg.plot').length"})
    assert seen.problems == []
    assert seen.external_requests == []
    # Every figure is there: drawn, or a "no data" note where its runs are not in the report.
    assert sorted(seen.values["plots"]) == sorted(PLOTS)
    assert seen.values["svg"] >= 4
