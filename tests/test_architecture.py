"""The protocol core is pure: standard library, canonicaljson, signedjson and PyNaCl only.

Checked twice: by import-linter with the contracts in setup.cfg, and by an
independent scan of every `import` statement in `federation/protocol`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = REPO / "federation" / "protocol"
PROTOCOL_PACKAGE = "federation.protocol"

ALLOWED_THIRD_PARTY = frozenset({"canonicaljson", "signedjson", "nacl"})
# Network, process, thread and database I/O: none of it belongs in the core, even
# though all of it is in the standard library.
FORBIDDEN_STDLIB = frozenset({
    "asyncio", "socket", "ssl", "subprocess", "threading", "urllib", "http", "sqlite3",
    "selectors", "select", "socketserver", "multiprocessing", "concurrent",
})


@dataclass(frozen=True)
class ImportSite:
    path: Path
    line: int
    module: str  # absolute module name, or ".x" for relative imports

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.module}"


def _imports(path: Path, source: str | None = None) -> list[tuple[ImportSite, int]]:
    """Every import in a module, as (site, relative level)."""
    tree = ast.parse(source if source is not None else path.read_text("utf-8"), str(path))
    found: list[tuple[ImportSite, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((ImportSite(path, node.lineno, alias.name), 0))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                names = [module] if module else [a.name for a in node.names]
                for name in names:
                    found.append((ImportSite(path, node.lineno, "." * node.level + name),
                                  node.level))
            else:
                found.append((ImportSite(path, node.lineno, module), 0))
        elif isinstance(node, ast.Call):
            # Dynamic imports would get round a static scan; the core has no need of them.
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            if name in ("__import__", "import_module"):
                found.append((ImportSite(path, node.lineno, f"<dynamic {name}()>"), -1))
    return found


def _package_depth(path: Path) -> int:
    """How many relative levels stay inside federation.protocol for this module."""
    return len(path.relative_to(PROTOCOL).parts)  # 1 for a module directly in the package


def _violations(path: Path, source: str | None = None) -> list[str]:
    problems: list[str] = []
    for site, level in _imports(path, source):
        if level < 0:
            problems.append(f"{site} (dynamic import)")
            continue
        if level > 0:
            if level > _package_depth(path):
                problems.append(f"{site} (relative import leaves {PROTOCOL_PACKAGE})")
            continue
        top = site.module.split(".")[0]
        if site.module == PROTOCOL_PACKAGE or site.module.startswith(PROTOCOL_PACKAGE + "."):
            continue
        if top in FORBIDDEN_STDLIB:
            problems.append(f"{site} (I/O module {top!r} is forbidden in the core)")
        elif top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
            continue
        else:
            problems.append(
                f"{site} ({top!r} is neither the standard library nor one of "
                f"{sorted(ALLOWED_THIRD_PARTY)})"
            )
    return problems


def _protocol_modules() -> list[Path]:
    return sorted(PROTOCOL.rglob("*.py"))


def test_import_linter_contracts_hold() -> None:
    bin_dir = Path(sys.executable).parent
    lint_imports = bin_dir / "lint-imports"
    if not lint_imports.exists():
        pytest.fail(f"import-linter is not installed in {bin_dir} (pip install -e .[test])")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(REPO / "setup.cfg")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        "import-linter found broken contracts:\n" + result.stdout + result.stderr
    )
    assert "protocol-is-pure" in (REPO / "setup.cfg").read_text()
    assert "0 broken" in result.stdout


def test_protocol_core_imports_only_allowed_modules() -> None:
    modules = _protocol_modules()
    assert len(modules) >= 10, f"expected the protocol core under {PROTOCOL}"
    problems = [problem for path in modules for problem in _violations(path)]
    assert not problems, (
        "federation.protocol may import only the standard library (without I/O modules), "
        f"{', '.join(sorted(ALLOWED_THIRD_PARTY))} and itself. Offending imports:\n  "
        + "\n  ".join(problems)
    )


def test_protocol_core_imports_no_io_modules() -> None:
    found = sorted(
        str(site)
        for path in _protocol_modules()
        for site, level in _imports(path)
        if level == 0 and site.module.split(".")[0] in FORBIDDEN_STDLIB
    )
    assert not found, "federation.protocol imports I/O modules:\n  " + "\n  ".join(found)


def test_protocol_core_uses_signing_libraries() -> None:
    """The scan sees real imports (and the allowed list isn't dead weight)."""
    tops = {
        site.module.split(".")[0]
        for path in _protocol_modules()
        for site, level in _imports(path)
        if level == 0
    }
    assert {"canonicaljson", "signedjson"} <= tops


@pytest.mark.parametrize(
    ("source", "offending"),
    [
        ("import asyncio", "asyncio"),
        ("import socket as s", "socket"),
        ("from urllib.parse import quote", "urllib"),
        ("from http import HTTPStatus", "http"),
        ("import twisted.internet", "twisted"),
        ("from homeserver import rooms", "homeserver"),
        ("from federation.transport import x", "federation.transport"),
        ("def f():\n    import sqlite3\n", "sqlite3"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import yaml\n", "yaml"),
        ("from ... import homeserver", "homeserver"),
        ("import importlib\nimportlib.import_module('twisted')", "import_module"),
        ("__import__('socket')", "__import__"),
    ],
)
def test_scanner_reports_offending_imports(source: str, offending: str) -> None:
    problems = _violations(PROTOCOL / "example.py", source)
    assert problems and any(offending in p for p in problems), problems


@pytest.mark.parametrize(
    "source",
    [
        "import json, re, hashlib",
        "from __future__ import annotations",
        "from typing import Any",
        "import canonicaljson",
        "from signedjson.sign import sign_json",
        "from nacl.signing import SigningKey",
        "from . import errors",
        "from .errors import Codes",
        "from federation.protocol import hashing",
        "import federation.protocol.errors",
    ],
)
def test_scanner_accepts_allowed_imports(source: str) -> None:
    assert _violations(PROTOCOL / "example.py", source) == []
