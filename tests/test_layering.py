"""The core's layering, read from the source: what each module of ``faceptor_core`` imports (module-level and
inside functions), resolved to absolute module names."""

from __future__ import annotations

import ast
from pathlib import Path

import faceptor_core

CORE = Path(faceptor_core.__file__).parent

#: Imports inside functions that run downward on purpose: a convenience method forwarding to the layer above.
FORWARDING = {("faceptor_core.model.base", "faceptor_core.photo.analyze")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``from x import y`` counts ``x`` and ``x.y``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


IMPORTS = {_module_name(p): _imports(p) for p in sorted(CORE.rglob("*.py"))}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(sources: list[str], targets: list[str]) -> list[str]:
    return sorted(
        f"{m} imports {i}"
        for m in sources
        for i in IMPORTS[m]
        if any(_under(i, t) for t in targets) and not any(m == a and _under(i, b) for a, b in FORWARDING)
    )


def test_the_walk_sees_the_core() -> None:
    assert "faceptor_core.model.base" in IMPORTS and "faceptor_core.spec" in IMPORTS["faceptor_core.model.base"]
    assert "faceptor_core.errors.TaskNotFoundError" in IMPORTS["faceptor_core.model.base"]


def test_the_core_never_imports_the_tasks() -> None:
    assert _violations(list(IMPORTS), ["faceptor_tasks"]) == []


def test_the_model_does_not_import_the_layers_above_it() -> None:
    model = [m for m in IMPORTS if _under(m, "faceptor_core.model")]
    above = ["faceptor_core.registry", "faceptor_core.train", "faceptor_core.photo", "faceptor_core.serve"]
    assert _violations(model, above) == []


def test_loading_and_evaluation_do_not_import_training() -> None:
    sources = [
        "faceptor_core.checkpoint",
        "faceptor_core.build",
        "faceptor_core.addons",
        "faceptor_core.evaluate",
        "faceptor_core.predictions",
    ]
    assert _violations(sources, ["faceptor_core.train"]) == []
