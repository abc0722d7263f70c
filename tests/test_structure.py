"""The code's structure as a checked contract (issue 13).

- Imports run one way, without cycles: ``traceledger`` (interfaces) > ``consumers`` (stream
  processes) > ``projections`` (read models) > ``ledger`` (domain and storage).
  import-linter checks it (contracts in ``pyproject.toml``); a second test plants
  an upward import in a copy of the tree and shows the contract catches it.
- ruff finds nothing.
- Interface modules (all of traceledger/: the HTTP API, the CLI, the shopper pages) hold no SQL and no function over
  80 lines; no module imports another module's private names; each package says
  what it offers in ``__all__``, and says it truthfully.
- Every table, index and schema is made by a migration file (``ledger/migrations``),
  never by a service at start-up (that raced: issue 13).

Each check is also shown failing once on a planted fault (an upward import, a cycle,
a long function, SQL in a router, DDL in a module, an unlisted module), so a check
that silently stopped looking would be noticed.

No services needed: these read the source.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "projections", "consumers", "traceledger")
BIN = Path(sys.executable).parent
# The interface layer: the HTTP API, the CLI, the shopper's pages, and the client-side modules beside them.
INTERFACES = [ROOT / "traceledger"]
MAX_FUNCTION_LINES = 80
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|WITH|COPY)\b", re.I | re.M)


@functools.cache
def _parsed(path: Path) -> ast.Module:
    """The module's syntax tree, parsed once per run (several checks walk the same files)."""
    return ast.parse(path.read_text(), str(path))


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else str(p)


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
        ("ledger/config.py", "import traceledger"),
        ("ledger/store.py", "import kafka"),
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


def import_cycles(graph) -> list[tuple[str, str]]:
    """Pairs of modules that reach each other through what they import (a cycle through both)."""
    return sorted(
        {tuple(sorted((m, imported))) for m in graph.modules for imported in graph.find_modules_directly_imported_by(m)
         if graph.chain_exists(importer=imported, imported=m)}
    )


@pytest.fixture(scope="module")
def import_graph():
    import grimp  # import-linter's graph builder

    return grimp.build_graph(*PACKAGES)


def test_no_import_cycles(import_graph):
    """No module reaches itself through what it imports (no bottom-of-file imports needed)."""
    cycles = import_cycles(import_graph)
    assert not cycles, cycles


def test_a_planted_cycle_is_found(import_graph):
    # ledger.service imports ledger.events (directly or not); one import back closes a cycle.
    assert import_graph.chain_exists(importer="ledger.service", imported="ledger.events")
    assert not import_graph.direct_import_exists(importer="ledger.events", imported="ledger.service")
    import_graph.add_import(importer="ledger.events", imported="ledger.service")
    try:
        assert ("ledger.events", "ledger.service") in import_cycles(import_graph)
    finally:
        import_graph.remove_import(importer="ledger.events", imported="ledger.service")
    assert not import_cycles(import_graph)


def test_ruff_finds_nothing():
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _functions(path: Path):
    tree = _parsed(path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def long_functions(paths) -> list[str]:
    return [
        f"{_rel(p)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
        for p in paths
        for f in _functions(p)
        if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def sql_strings(paths) -> list[str]:
    """Places of string constants that read like an SQL statement (a keyword first, then FROM/INTO/SET/...).
    Docstrings are prose: "With ``x``, ... into the signed event" is not a statement."""
    found = []
    for p in paths:
        tree = _parsed(p)
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, DOCUMENTED) and ast.get_docstring(n) is not None}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and SQL.search(node.value):
                if " " in node.value.strip() and re.search(r"\b(FROM|INTO|SET|TABLE|VALUES)\b", node.value, re.I):
                    found.append(f"{_rel(p)}:{node.lineno}")
    return found


def test_interface_functions_are_short():
    long = long_functions(_sources(*INTERFACES))
    assert not long, long


def test_interface_modules_hold_no_sql():
    found = sql_strings(_sources(*INTERFACES))
    assert not found, found


def test_a_planted_long_function_and_planted_sql_are_found(tmp_path):
    router = tmp_path / "router.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    router.write_text(f"def handler():\n{body}\n\ndef lookup(conn):\n    \"\"\"Select the label from its row.\"\"\"\n"
                      "    return conn.execute('SELECT serial FROM verification.labels')\n")
    assert long_functions([router]) == [f"{router}:1 handler ({MAX_FUNCTION_LINES + 1} lines)"]
    assert sql_strings([router]) == [f"{router}:{MAX_FUNCTION_LINES + 6}"]  # the statement, not the docstring


# DDL that makes or changes the schema. Not matched on purpose: CREATE TEMP TABLE (a session's
# own staging table, gone at commit or disconnect: projections/bulk.py) and CREATE DATABASE
# (throw-away test databases: traceledger/sandbox.py).
DDL = re.compile(
    r"\b(CREATE(\s+OR\s+REPLACE)?(\s+UNIQUE)?\s+(TABLE|INDEX|SCHEMA|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|TYPE|FUNCTION|TRIGGER|EXTENSION)"
    r"|(ALTER|DROP)\s+(TABLE|INDEX|SCHEMA|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|TYPE|FUNCTION|TRIGGER))\b",
    re.I,
)
# The runner itself: its version table (the one table not in a file, it records which files ran)
# and the DROP SCHEMA of a read model's --rebuild, which then lays it out again from the files.
DDL_ALLOWED = {"ledger/migrate.py"}


def ddl_strings(paths) -> list[str]:
    found = []
    for p in paths:
        for node in ast.walk(_parsed(p)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and DDL.search(node.value):
                found.append(f"{_rel(p)}:{node.lineno} {DDL.search(node.value).group(0)}")
    return found


def test_all_ddl_is_in_the_migrations():
    code = [p for p in _sources(*(ROOT / pkg for pkg in PACKAGES), ROOT / "bench")
            if _rel(p) not in DDL_ALLOWED]
    found = ddl_strings(code)
    assert not found, found
    assert ddl_strings([ROOT / "ledger" / "migrate.py"]), "the runner's own DDL is no longer seen: is the check blind?"


def test_planted_ddl_is_found(tmp_path):
    module = tmp_path / "start.py"
    module.write_text('def start(conn):\n    conn.execute("""\n        create unique index if not exists x ON labels (serial)""")\n'
                      '    conn.execute(f"ALTER TABLE {schema}.labels ADD COLUMN y int")\n')
    assert ddl_strings([module]) == [f"{module}:2 create unique index", f"{module}:4 ALTER TABLE"]


PROBLEM_MEMBERS = {"type", "title", "status", "detail"}
# The one place problem+json answers are built (issue 13: five builders became one).
PROBLEM_BUILDER = "traceledger/api/problems.py"
PROBLEM_BUILDERS_ALLOWED = {PROBLEM_BUILDER}


def problem_builders(paths) -> list[str]:
    """Places that assemble a problem answer themselves: a dict literal with type, title, status and
    detail, or a response given the problem+json media type spelled out (not the OpenAPI docs naming it)."""
    found = []
    for p in paths:
        for node in ast.walk(_parsed(p)):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if PROBLEM_MEMBERS <= keys:
                    found.append(f"{_rel(p)}:{node.lineno}")
            elif isinstance(node, ast.keyword) and node.arg == "media_type" and isinstance(node.value, ast.Constant) \
                    and "problem+json" in str(node.value.value):
                found.append(f"{_rel(p)}:{node.value.lineno}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, bytes) and b"problem+json" in node.value:
                found.append(f"{_rel(p)}:{node.lineno}")
    return found


def test_problem_json_is_built_in_one_place():
    found = problem_builders(p for p in _sources(ROOT / "traceledger") if _rel(p) not in PROBLEM_BUILDERS_ALLOWED)
    assert not found, found
    assert problem_builders([ROOT / PROBLEM_BUILDER]), "the builder itself is no longer seen: is the check blind?"


def test_a_planted_problem_builder_is_found(tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text('def refuse():\n    return {"type": "about:blank", "title": "no", "status": 400, "detail": "bad"}\n\n\n'
                       'def gone():\n    return JSONResponse(body, status_code=404, media_type="application/problem+json")\n')
    assert problem_builders([handler]) == [f"{handler}:2", f"{handler}:6"]


# Settings come from ledger.config.Settings alone; the one other read is prometheus-client's own
# variable (multiprocess mode), which the library itself reads.
ENVIRON_ALLOWED = {"ledger/config.py": None, "traceledger/api/metrics.py": "PROMETHEUS_MULTIPROC_DIR"}


def environ_reads(paths) -> list[str]:
    """Places that read ``os.environ`` / ``os.getenv`` (with the key when it is a literal)."""
    found = []
    for p in paths:
        for node in ast.walk(_parsed(p)):
            target = None
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and isinstance(node.value, ast.Name) and node.value.id == "os":
                target = node
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in ("environ", "getenv") for a in node.names):
                target = node
            if target is not None:
                found.append(f"{_rel(p)}:{target.lineno}")
    return found


def test_settings_are_read_through_config_only():
    """No module reads the environment beside Settings (sigcheck and the auditor once did)."""
    found = []
    for p in _sources(*(ROOT / pkg for pkg in PACKAGES)):
        where = _rel(p)
        if where in ENVIRON_ALLOWED and (ENVIRON_ALLOWED[where] is None or ENVIRON_ALLOWED[where] in p.read_text()):
            continue
        found += environ_reads([p])
    assert not found, found
    assert environ_reads([ROOT / "ledger" / "config.py"]), "config.py's own reads are no longer seen: is the check blind?"


def test_a_planted_environ_read_is_found(tmp_path):
    module = tmp_path / "threads.py"
    module.write_text('import os\nfrom os import getenv\n\nTHREADS = int(os.environ.get("TRACELEDGER_VERIFY_THREADS", "4"))\n')
    assert sorted(environ_reads([module])) == [f"{module}:2", f"{module}:4"]


def test_only_the_store_knows_eventsourcings_stored_json():
    """eventsourcing's stored-state JSON (``{"_type_": ..., "_data_": ...}``) is read and written in ledger/store.py only."""
    found = [
        f"{_rel(p)}:{node.lineno}"
        for p in _sources(*(ROOT / pkg for pkg in PACKAGES)) if _rel(p) != "ledger/store.py"
        for node in ast.walk(_parsed(p))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "_data_" in node.value
    ]
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
        tree = _parsed(p)
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


def unlisted_modules(package: Path) -> tuple[list[str], list[str]]:
    """What ``package/__init__.py``'s ``__all__`` names that is not there, and (for a package of
    modules, one that binds nothing of its own) the public modules it does not name."""
    init = package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"{_rel(init)} has no docstring"
    declared = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            declared = ast.literal_eval(node.value)
    assert declared, f"{_rel(init)} declares no __all__"
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
    unlisted = []
    # A package of modules lists every public module. (``__all__`` itself and the
    # ``annotations`` of ``from __future__`` are not something the package offers.)
    if not bound - {"annotations", "__all__"}:
        unlisted = sorted(m for m in present if not m.startswith("_") and m not in declared)
    return missing, unlisted


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_says_what_it_offers(package):
    """``__all__`` names the package's public modules (or what it re-exports), and nothing that is not there."""
    missing, unlisted = unlisted_modules(package)
    assert not missing, f"{_rel(package)}/__init__.py offers what it does not have: {missing}"
    assert not unlisted, f"{_rel(package)}/__init__.py does not list {unlisted}"


def test_an_unlisted_module_and_a_listed_ghost_are_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package of modules."""\n\n__all__ = ["kept", "gone"]\n')
    (package / "kept.py").write_text("")
    (package / "new.py").write_text("")
    (package / "_private.py").write_text("")
    assert unlisted_modules(package) == (["gone"], ["new"])


# ------------------------------------------------------------------ README matches the tree


def _readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_readme_layout_names_every_module_and_package():
    """Each package's row of README's Layout table names each of its modules and subpackages."""
    rows = dict(re.findall(r"^\| `([a-z]+)/` \| (.*) \|$", _readme_section("## Layout"), re.M))
    unnamed = {}
    for pkg in PACKAGES:
        named = set(re.findall(r"`([a-z_0-9]+)/?`", rows[pkg]))
        modules = [p for p in (ROOT / pkg).rglob("*.py") if p.stem not in ("__init__", "__main__")]
        subpackages = [p.parent for p in (ROOT / pkg).rglob("__init__.py") if p.parent != ROOT / pkg]
        missing = sorted(_rel(p) for p in modules + subpackages if p.stem not in named)
        if missing:
            unnamed[pkg] = missing
    assert not unnamed, f"README.md's Layout does not name (add a word on each to its package's row): {unnamed}"


def test_readme_data_flow_names_only_paths_that_exist():
    flow = _readme_section("## How data flows")
    diagram = flow[flow.index("```"):flow.index("```", flow.index("```") + 3)]
    paths = re.findall(r"\b((?:ledger|projections|consumers|traceledger)/[a-z_/]*(?:\.py)?)", diagram)
    assert len(paths) > 10
    absent = sorted({p for p in paths if "*" not in p and not (ROOT / p).exists()})
    assert not absent, f"README.md's data-flow diagram names paths that do not exist: {absent}"


def test_layout_doc_moves_lead_to_modules_that_exist():
    """docs/design/layout.md's table of moved modules: each new path is there, each old one is gone."""
    text = (ROOT / "docs" / "design" / "layout.md").read_text()
    table = text[text.index("### Whole modules moved or renamed"):text.index("### Modules split into several")]
    rows = re.findall(r"^\| `([^`]+)`(?: \([0-9a-f]+\))? \| `([^`]+)`", table, re.M)
    assert len(rows) > 20
    wrong = [f"{old} -> {new}" for old, new in rows if (ROOT / old).exists() or not (ROOT / new).exists()]
    assert not wrong, f"docs/design/layout.md's moves no longer match the tree: {wrong}"
