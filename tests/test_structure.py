"""The code's structure as a checked contract (issue 13).

- Imports run one way, without cycles: ``traceledger`` (interfaces) > ``consumers`` (stream
  processes) > ``projections`` (read models) > ``ledger`` (domain and storage).
  import-linter checks it (contracts in ``pyproject.toml``); a second test plants
  an upward import in a copy of the tree and shows the contract catches it.
- ruff finds nothing.
- Interface modules (the HTTP API, the CLI) hold no SQL and no function over
  80 lines; no module imports another module's private names; each package says
  what it offers in ``__all__``, and says it truthfully.

No services needed: these read the source.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "projections", "consumers", "traceledger")
BIN = Path(sys.executable).parent
INTERFACES = [ROOT / "traceledger" / "api", ROOT / "traceledger" / "cli", ROOT / "traceledger" / "channels"]
MAX_FUNCTION_LINES = 80
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|WITH|COPY)\b", re.I | re.M)


def _sources(*roots: Path):
    for root in roots:
        yield from sorted(root.rglob("*.py")) if root.is_dir() else ([root] if root.exists() else [])


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_layer_contract_holds():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("ledger/events.py", "from projections import verdict"),
        ("projections/verdict.py", "from consumers import relay"),
        ("projections/verdict.py", "import kafka"),
        ("consumers/topics.py", "from traceledger import client"),
    ],
)
def test_layer_contract_fails_on_an_upward_import(tmp_path, module, upward):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / module
    planted.write_text(planted.read_text() + f"\n{upward}  # planted by the test\n")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout
    assert "BROKEN" in out.stdout
    assert module.removesuffix(".py").replace("/", ".") in out.stdout


def test_no_import_cycles():
    """No module reaches itself through what it imports (no bottom-of-file imports needed)."""
    import grimp  # import-linter's graph builder

    graph = grimp.build_graph(*PACKAGES)
    cycles = sorted(
        {tuple(sorted((m, imported))) for m in graph.modules for imported in graph.find_modules_directly_imported_by(m)
         if graph.chain_exists(importer=imported, imported=m)}
    )
    assert not cycles, cycles


def test_ruff_finds_nothing():
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _functions(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_interface_functions_are_short():
    long = [
        f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for p in _sources(*INTERFACES)
        for f in _functions(p)
        if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_interface_modules_hold_no_sql():
    found = []
    for p in _sources(*INTERFACES):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                if " " in node.value.strip() and re.search(r"\b(FROM|INTO|SET|TABLE|VALUES)\b", node.value, re.I):
                    found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def _project_modules() -> set[str]:
    mods = set()
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            mods.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return mods


def test_no_module_imports_another_modules_private_names():
    project = _project_modules()
    crossings = []
    for p in _sources(*(ROOT / pkg for pkg in PACKAGES), ROOT / "tests", ROOT / "bench"):
        tree = ast.parse(p.read_text())
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in project:
                        aliases[a.asname or a.name] = full
                    elif node.module in project and a.name.startswith("_") and not a.name.startswith("__"):
                        crossings.append(f"{p.relative_to(ROOT)}:{node.lineno} imports {node.module}.{a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in project and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
            ):
                crossings.append(f"{p.relative_to(ROOT)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not crossings, crossings


def _packages() -> list[Path]:
    return sorted(p.parent for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py"))


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_says_what_it_offers(package):
    """``__all__`` names the package's public modules (or what it re-exports), and nothing that is not there."""
    init = package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"{init.relative_to(ROOT)} has no docstring"
    declared = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            declared = ast.literal_eval(node.value)
    assert declared, f"{init.relative_to(ROOT)} declares no __all__"
    bound = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {
        d.name for d in package.iterdir() if (d / "__init__.py").exists()
    }
    missing = [name for name in declared if name not in present | bound]
    assert not missing, f"{init.relative_to(ROOT)} offers what it does not have: {missing}"
    if not bound - {"annotations"}:  # a package of modules lists every public module
        unlisted = sorted(m for m in present if not m.startswith("_") and m not in declared)
        assert not unlisted, f"{init.relative_to(ROOT)} does not list {unlisted}"
