"""The package layout the design picture promises (docs/DESIGN.md): no import cycles, evaluation never
imports the pipeline, audio.py and the waveform cache do not import each other, a small package root,
and every module imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "auscult"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    """auscult modules imported by ``path`` (module level only, or anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    known = _modules()
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # "from pkg import name": name may be a symbol
            target = target.rpartition(".")[0]
        if target and target != module:
            out.add(target)

    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # e.g. `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("auscult"):
                    add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve(module, is_pkg, node.level, node.module)
            if not base.startswith("auscult"):
                continue
            for a in node.names:
                add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return out


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles_at_module_level():
    """The graph of module-level imports between auscult modules has no cycle (a package's import of
    its own ancestors is how Python imports any submodule, so it is not an edge)."""
    mods = _modules()
    graph = {m: {t for t in _imports(p, m, True) if t not in _ancestors(m)} for m, p in mods.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if seen.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_evaluation_never_imports_the_pipeline_and_audio_is_below_the_cache():
    mods = _modules()
    for m, p in mods.items():
        if m.startswith("auscult.eval"):
            bad = {t for t in _imports(p, m, False) if t.startswith(("auscult.pipeline", "auscult.monitor"))}
            assert not bad, (m, bad)
    assert "auscult.data.cache" not in _imports(mods["auscult.audio"], "auscult.audio", False)
    assert "auscult.audio" in _imports(mods["auscult.data.cache"], "auscult.data.cache", False)  # one direction


def test_the_package_root_keeps_only_small_shared_modules():
    root = sorted(p.stem for p in PKG.glob("*.py"))
    assert root == ["__init__", "api", "audio", "cli", "errors", "fileio", "recipes", "registry"]
    # recipes.py only re-exports auscult.pipeline.recipe (kept importable for existing code)
    tree = ast.parse((PKG / "recipes.py").read_text())
    assert all(isinstance(n, (ast.Expr, ast.ImportFrom, ast.Assign)) for n in tree.body)
    sub = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert {"pipeline", "monitor", "methods", "eval", "data"} <= set(sub)
    assert (PKG / "methods" / "clsia" / "method.py").is_file() and (PKG / "monitor" / "export.py").is_file()


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = ("import importlib, sys\nbad = []\nfor n in sys.argv[1:]:\n    try:\n        importlib.import_module(n)\n"
            "    except Exception as e:\n        bad.append(f'{n}: {type(e).__name__}: {e}')\nprint('\\n'.join(bad))\n"
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_private_imports_across_the_clsia_files():
    """CLSIA's files (model, method, pretrain, cli) import only each other's public names."""
    for p in (PKG / "methods" / "clsia").glob("*.py"):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert not [a.name for a in node.names if a.name.startswith("_")], (p.name, ast.dump(node))
