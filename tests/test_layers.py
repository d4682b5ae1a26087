"""The package's layers (ARCHITECTURE.md): a module imports only from its own layer and the layers below."""

import ast
from pathlib import Path

import albertkit

PACKAGE = Path(albertkit.__file__).parent
# Lowest first. A layer may import any layer to its left.
LAYERS = ["errors", "runtime", "io", "tokenization", "modeling", "data", "tasks", "inference", "report",
          "train", "serve", "samples", "api", "quickstart", "cli"]


def _layer(module: str) -> str:
    return module.split(".")[1].removesuffix(".py") if "." in module else module


def upward_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "__init__":
            continue  # the package's front door re-exports from every layer
        own = LAYERS.index(parts[0])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("albertkit."):
                target = _layer(node.module)
                if target in LAYERS and LAYERS.index(target) > own:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {node.module}")
    return found


def test_every_subpackage_has_a_layer():
    names = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert names - {"__init__"} <= set(LAYERS)


def test_imports_only_point_down():
    assert upward_imports() == []
