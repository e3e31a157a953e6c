"""The package's shape: its import graph has no cycles, no module imports from a layer above its own, and the
libraries of one adapter stay in that adapter (docs/design.md draws the layers)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "ganaug"

# bottom to top; packages of one rank may not import each other
LAYERS = {"_util": 0, "data": 1, "nets": 2, "sampling": 3, "train": 4, "adapters": 5, "eval": 5, "feature_space": 5,
          "cli": 6}
FACADE_RANK = 7  # ganaug/__init__.py, __main__.py and the public adapter modules re-export; nothing imports them

# third-party imports allowed only in the named modules
CONFINED = {
    "albumentations": {"ganaug.adapters.albumentations"},
    "pydantic": {"ganaug.adapters.albumentations"},
    "cv2": {"ganaug.sampling.completion", "ganaug.adapters.functional"},
    # the Hub client: downloads and uploads of models in _util/hub (timm's weights look in its cache too)
    "huggingface_hub": {"ganaug._util.hub", "ganaug.nets.weights"},
}


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (packages by their ``__init__``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str) -> list[tuple[str, bool]]:
    """``(imported module, only under TYPE_CHECKING)`` for every import in a module, local ones included.

    An import of ``package.x`` names the module ``package.x``; ``from package.x import y`` names
    ``package.x.y`` when that is a module, else ``package.x``. Other top-level packages are kept by
    their first name.
    """
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        guarded = _in_type_checking(node, parents)
        for target in targets:
            own = target == package or target.startswith(package + ".")
            found.append((target if own else target.split(".")[0], guarded))
    return found


def rank(name: str, package: str) -> tuple[int, str]:
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]], parts[1]
    return FACADE_RANK, ""


def check_import_graph(root: Path, package: str) -> list[str]:
    """Problems of the package's import graph: cycles, upward or sideways imports, confined libraries."""
    modules = module_names(root, package)
    problems, graph = [], {}
    for name, path in modules.items():
        edges = imports_of(name, path, modules, package)
        graph[name] = sorted({target for target, guarded in edges if target in modules and not guarded})
        own_rank, own_layer = rank(name, package)
        for target, _ in edges:
            if target in modules and target != name:
                target_rank, target_layer = rank(target, package)
                if target_rank > own_rank or (target_rank == own_rank and target_layer != own_layer):
                    problems.append(f"{name} (layer {own_layer or 'facade'}) imports {target} "
                                    f"(layer {target_layer or 'facade'})")
            if target in CONFINED and name not in CONFINED[target]:
                problems.append(f"{name} imports {target}, which only {sorted(CONFINED[target])} may import")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (depth-first search)."""
    cycles, done = [], set()
    for start in graph:
        stack, path, on_path = [(start, iter(graph[start]))], [start], {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                cycle = path[path.index(child):] + [child]
                if not any(set(cycle) == set(c) for c in cycles):
                    cycles.append(cycle)
            elif child not in done:
                stack.append((child, iter(graph[child])))
                path.append(child)
                on_path.add(child)
    return cycles


def test_ganaug_import_graph_has_no_cycles_and_no_upward_imports():
    assert check_import_graph(PACKAGE_ROOT, "ganaug") == []


def test_every_module_belongs_to_a_layer():
    facade = {"ganaug", "ganaug.__main__", "ganaug.albumentations", "ganaug.transforms"}
    unplaced = [name for name in module_names(PACKAGE_ROOT, "ganaug") if rank(name, "ganaug")[0] == FACADE_RANK]
    assert set(unplaced) == facade


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_checker_finds_the_cycle_ganaug_used_to_have(tmp_path):
    """completion imported gan's seed helper, and GANAug.complete imported completion inside the method."""
    root = _write_package(tmp_path, {
        "__init__.py": "",
        "sampling/__init__.py": "",
        "sampling/gan.py": """
            def _generator(seed): ...
            class GANAug:
                def complete(self):
                    from pkg.sampling.completion import complete_images
        """,
        "sampling/completion.py": "from pkg.sampling.gan import _generator\n",
    })
    problems = check_import_graph(root, "pkg")
    assert any(p.startswith("import cycle:") and "pkg.sampling.gan" in p and "pkg.sampling.completion" in p
               for p in problems), problems


def test_the_checker_finds_upward_sideways_and_confined_imports(tmp_path):
    root = _write_package(tmp_path, {
        "__init__.py": "",
        "_util/__init__.py": "",
        "_util/io.py": "from pkg.cli import main\n",
        "cli/__init__.py": "def main(): ...\n",
        "eval/__init__.py": "",
        "eval/metrics.py": "from ..feature_space import fgan\n",
        "feature_space/__init__.py": "",
        "feature_space/fgan.py": "import albumentations\n",
        "nets/__init__.py": "",
        "nets/models.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.train import loop\n",
        "train/__init__.py": "",
        "train/loop.py": "",
    })
    problems = check_import_graph(root, "pkg")
    assert "pkg._util.io (layer _util) imports pkg.cli (layer cli)" in problems
    assert "pkg.eval.metrics (layer eval) imports pkg.feature_space.fgan (layer feature_space)" in problems
    assert any("pkg.feature_space.fgan imports albumentations" in p for p in problems)
    assert "pkg.nets.models (layer nets) imports pkg.train.loop (layer train)" in problems  # annotations count too
    assert not any(p.startswith("import cycle") for p in problems)


@pytest.mark.parametrize("module", ["ganaug", "ganaug.transforms", "ganaug.cli"])
def test_importing_the_core_loads_neither_albumentations_nor_opencv(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('albumentations', 'cv2', 'pydantic') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("mode", ["mix", "replace"])
def test_a_mix_transform_loads_opencv_where_it_is_built(tiny_run, mode):
    """So that forked DataLoader workers inherit it rather than each import it on its first sample."""
    code = (f"import sys; from ganaug.transforms import GANAugment; GANAugment({str(tiny_run)!r}, mode={mode!r}); "
            "print('cv2' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(mode == "mix")


def test_design_doc_names_every_module():
    """docs/design.md's table gives each module's job: a module added without a line there fails here."""
    design = (PACKAGE_ROOT.parent / "docs" / "design.md").read_text()
    modules = [path.relative_to(PACKAGE_ROOT).as_posix() for path in PACKAGE_ROOT.rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py") and path.parent != PACKAGE_ROOT]
    missing = [module for module in modules if f"`{module}`" not in design]
    assert missing == []


def test_the_public_surface_is_kept():
    import ganaug
    import ganaug.albumentations
    import ganaug.transforms

    assert sorted(ganaug.__all__) == sorted([
        "DataSource", "EvalConfig", "ExpandedDataset", "FeatureDataset", "FeatureExtractor", "FeatureGAN",
        "FeatureGANConfig", "GANAug", "HubError", "ImageDataset", "PretrainConfig", "PretrainResult", "SampleBank",
        "SyntheticDataset", "TrainConfig", "VariantBank", "WeightsUnavailableError", "__version__", "evaluate",
        "extract_features",
        "load_dataset", "load_fashion_mnist", "pretrain_extractor", "train"])
    assert all(hasattr(ganaug, name) for name in ganaug.__all__)
    assert ganaug.albumentations.__all__ == ["GANAugment", "GANCutoutFill", "worker_init_fn"]
    assert ganaug.transforms.__all__ == ["GANAugment", "GANCutoutFill", "find_label"]
