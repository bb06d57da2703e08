"""The package's floors (DESIGN.md, README "Layout"): core -> data -> models -> tasks -> trainer / infer -> cli.

Read from the source with `ast`, so a stray import fails here rather than in a review: each room
imports only rooms below it; nothing imports a command-line module; inference imports neither
training code nor the renderer; the commands users type stay thin entry points.
"""
from __future__ import annotations

import ast

import pytest
from conftest import REPO

PACKAGE = REPO / "svhn_jax"
# room -> the rooms (module prefixes) it may import besides itself
ALLOWED = {
    "core": (),
    "data": ("core",),
    "models": ("core", "data"),
    "pretrained": ("core", "models"),
    "tasks": ("core", "data", "models"),
    "infer": ("core", "data.preprocess", "data.model_input", "models", "pretrained"),
    "trainer": ("core", "data", "models", "tasks", "infer.weights", "pretrained"),
    "cli": ("core", "data", "models", "tasks", "infer", "pretrained", "trainer"),
}
COMMANDS = ("main", "predict", "score_photos", "prepare", "synth", "report", "export", "demo", "import_ppocr")


def _imports(path) -> set[str]:
    """The svhn_jax modules `path` imports (``from svhn_jax.x import y`` counts as svhn_jax.x.y)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("svhn_jax")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("svhn_jax"):
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {name.removeprefix("svhn_jax.") for name in out if name != "svhn_jax"}


def _room(path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if _room(p) in ALLOWED),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_room_imports_only_rooms_below_it(path):
    room = _room(path)
    allowed = (room, *ALLOWED[room])
    wrong = sorted(m for m in _imports(path) if not any(m == a or m.startswith(a + ".") for a in allowed))
    assert wrong == [], f"{path.relative_to(REPO)} ({room}) imports {wrong}"


def test_the_commands_users_type_are_thin_entry_points_into_cli():
    for name in COMMANDS:
        early = {"core.signals"} if name == "main" else set()  # its load-time signal handler
        assert _imports(PACKAGE / f"{name}.py") == {f"cli.{name}.run_as_program", *early}, name


def test_no_module_imports_a_command_line_module():
    for path in PACKAGE.rglob("*.py"):
        if _room(path) in COMMANDS:
            continue
        cli_imports = {m for m in _imports(path) if m.startswith("cli.")}
        assert cli_imports == set(), f"{path.relative_to(REPO)} imports {cli_imports}"
