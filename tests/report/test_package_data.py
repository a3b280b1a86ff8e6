"""The report's files that are not Python (the HTML template) are package data, so a wheel or
any non-editable install carries them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_data_file_of_the_report_package_is_declared_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package = ROOT / "src/codeduel"
    declared = {
        path
        for pattern in config["tool"]["setuptools"]["package-data"]["codeduel"]
        for path in package.glob(pattern)
    }
    data = {
        path
        for path in (package / "report").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    }
    assert package / "report/templates/report.html.j2" in data
    assert data <= declared, sorted(str(p.relative_to(package)) for p in data - declared)
