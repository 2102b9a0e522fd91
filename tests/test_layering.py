"""The package's layering (docs/architecture.md): rooms import only rooms below them.

A *room* is a subpackage of ``hptransfer`` or a top-level module. Every import is checked,
the lazy ones inside functions too (only ``if TYPE_CHECKING:`` blocks are passed over):
statically from the source, and at run time by importing each room alone in a fresh
interpreter. The model library is also checked to import no pandas, pyarrow, Ray or Optuna.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import hptransfer
import hptransfer.param

# Top to bottom. A room may import the rooms of the layers below its own, never one of its own
# layer (siblings stay independent) nor one above. The package root (``hptransfer/__init__``)
# is a facade over them all and belongs to none.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("bench", "own"),  # the scale probe and the own-model door use transfer and coord_check
    ("transfer", "coord_check"),
    ("sweep", "distributed", "analysis"),
    ("trackers",),
    ("runtime",),
    ("train", "plan", "cost", "sparse_evidence"),
    ("adapt",),  # any module under the rules; a run's model whichever its kind
    ("models", "optim", "budget"),
    ("kernels", "store", "data"),
    ("config",),
    ("param",),
    ("errors", "provenance", "display", "atomic", "quadratic"),
)
# What must stay light to import: the model library can be used without the results stack.
LIGHT_ROOMS = ("models", "kernels", "param", "config")
HEAVY = ("pandas", "pyarrow", "ray", "optuna")

PACKAGE = Path(hptransfer.__file__).parent
LAYER_OF = {room: depth for depth, rooms in enumerate(LAYERS) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str | None:
    """``hptransfer.sweep.spec`` → ``sweep``; the package root → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def allowed(importer: str, imported: str) -> bool:
    return importer == imported or LAYER_OF[imported] > LAYER_OF[importer]


def imports(module: str) -> list[tuple[int, str]]:
    """(line, hptransfer module) for every import in ``module`` outside TYPE_CHECKING blocks;
    ``from package import name`` counts as an import of ``package.name`` when that is a module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: None if path.name == "__init__.py" else -1]
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("hptransfer") and name != module:
                found.append((node.lineno, name))
    return found


def test_every_room_has_a_layer():
    rooms = {room(module) for module in MODULES} - {None}
    missing = sorted(rooms - set(LAYER_OF))
    assert not missing, f"rooms without a layer: {missing}; place them in LAYERS and the docs"
    gone = sorted(set(LAYER_OF) - rooms)
    assert not gone, f"LAYERS names rooms that do not exist: {gone}"


def test_rooms_import_only_rooms_below():
    wrong = {
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {name}"
        for module in MODULES
        if room(module) is not None
        for line, name in imports(module)
        if room(name) is not None and not allowed(room(module), room(name))
    }
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
    graph = {
        module: {name for _, name in imports(module) if room(name) is not None}
        for module in MODULES
        if room(module) is not None
    }
    cycles = set()
    for start in graph:  # a path back to itself; the graph is small, depth-first will do
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for name in graph[module]:
                if name == start and start == min(path):  # each cycle once, from its first
                    cycles.add(" → ".join((*path, start)))
                elif name not in seen:
                    seen.add(name)
                    stack.append((name, (*path, name)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("hptransfer.") or m in {heavy})))
"""


def test_each_room_imports_alone_in_a_fresh_interpreter():
    """What importing a room loads (module-level imports only: the static test has the rest)."""
    probe = PROBE.format(heavy=set(HEAVY))
    rooms = sorted(LAYER_OF)
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", probe, f"hptransfer.{name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in rooms
    }
    wrong = []
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        if process.returncode:
            wrong.append(f"import hptransfer.{name} failed: {err.strip().splitlines()[-1]}")
            continue
        loaded = json.loads(out)
        above = sorted(m for m in loaded if room(m) in LAYER_OF and not allowed(name, room(m)))
        if above:
            wrong.append(f"import hptransfer.{name} loads {', '.join(above)}")
        heavy = sorted(set(loaded) & set(HEAVY))
        if name in LIGHT_ROOMS and heavy:
            wrong.append(f"import hptransfer.{name} loads {', '.join(heavy)}")
    assert not wrong, "\n".join(wrong)


def test_the_model_library_imports_no_results_stack():
    probe = f"import sys, hptransfer.models; print(sorted(set(sys.modules) & {set(HEAVY)}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import hptransfer.models loads {out.stdout.strip()}"


def test_the_param_rooms_names_have_one_import_path():
    """What ``hptransfer.param`` exports (``BaseHPs``, ``BaseShape``, ...) is imported from it
    outside the room: never from the module that defines it, nor through ``config``."""
    exported = set(hptransfer.param.__all__)
    wrong = sorted(
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {alias.name} from {node.module}"
        for module, path in MODULES.items()
        if room(module) != "param"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hptransfer.")
        if node.module != "hptransfer.param"
        for alias in node.names
        if alias.name in exported
    )
    assert not wrong, "import these from hptransfer.param:\n" + "\n".join(wrong)


def test_the_architecture_doc_draws_these_layers():
    """docs/architecture.md's table lists LAYERS: the same rooms, layer by layer, in order."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = [line.split("|") for line in doc.splitlines() if re.match(r"\| \d+ \|", line)]
    drawn = tuple(tuple(re.findall(r"`(\w+)`", cells[2])) for cells in rows)
    assert drawn == LAYERS
