"""The library surface: every public module declares `__all__`, every declared name exists,
packages re-export their API, and no module reaches into another package's private modules."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import grimp
import pytest

import codeduel


def _modules() -> list[str]:
    names = ["codeduel"]
    for info in pkgutil.walk_packages(codeduel.__path__, "codeduel."):
        if info.name != "codeduel.__main__":
            names.append(info.name)
    return names


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


PUBLIC = [m for m in _modules() if not _private(m)]


@pytest.mark.parametrize("name", PUBLIC)
def test_a_public_module_declares_its_api_and_has_every_name(name: str) -> None:
    if name.startswith("codeduel.models.") and name.rsplit(".", 1)[1] in (
        "anthropic",
        "openai",
        "llamacpp",
        "transformers",
    ):
        pytest.importorskip(
            {"llamacpp": "llama_cpp", "transformers": "torch"}.get(name.rsplit(".", 1)[1], "os")
        )
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert isinstance(declared, list) and declared, f"{name} declares no __all__"
    assert len(set(declared)) == len(declared)
    missing = [n for n in declared if not hasattr(module, n)]
    assert missing == []


PACKAGES = [m for m in PUBLIC if hasattr(importlib.import_module(m), "__path__")]


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_declares_every_public_thing_of_its_own_that_it_shows(name: str) -> None:
    """What a package's `__init__` holds of its own modules is its API, so it is declared;
    names it imports from elsewhere (`Mapping`, another package's error) are not its own."""
    package = importlib.import_module(name)
    own = {
        n
        for n, value in vars(package).items()
        if not n.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith(name)
    }
    assert own - set(package.__all__) == set()


def test_the_top_level_names_are_their_home_packages_objects() -> None:
    for name in codeduel.__all__:
        value = getattr(codeduel, name)
        if name == "__version__":
            continue
        home = importlib.import_module(value.__module__.rsplit("._", 1)[0])
        assert getattr(home, name) is value, name


def test_importing_codeduel_loads_nothing_else() -> None:
    code = "import sys, codeduel; print(sorted(m for m in sys.modules if 'codeduel' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['codeduel']"


def test_no_module_imports_another_packages_private_module() -> None:
    graph = grimp.build_graph("codeduel")
    reaching = []
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            parts = imported.split(".")
            owner = next(
                (".".join(parts[:i]) for i, p in enumerate(parts) if _private(p) and i),
                None,
            )
            if owner and not (module == owner or module.startswith(owner + ".")):
                reaching.append(f"{module} -> {imported}")
    assert reaching == []
