"""Importing dae_tutor touches no network, leaves torch's threads alone, exposes every module, and the
package has no import cycle."""

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dae_tutor"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)


def test_import_makes_no_network_call():
    result = run_python(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError(f"network use during import: {args}")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        import dae_tutor
        import dae_tutor.data, dae_tutor.widgets, dae_tutor.plots, dae_tutor.cache
        print("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_import_leaves_torch_threads_alone():
    # DAE_TUTOR_THREADS=1 and torch at 2 threads: an import that called set_threads() would show 1.
    result = run_python(
        """
        import os
        import torch

        os.environ["DAE_TUTOR_THREADS"] = "1"
        torch.set_num_threads(2)
        import dae_tutor

        after_import = torch.get_num_threads()
        for name in dae_tutor.__all__:
            getattr(dae_tutor, name)  # importing every module changes nothing either
        after_modules = torch.get_num_threads()
        dae_tutor.runtime.set_threads(1)  # control: the explicit call does change it
        print(after_import, after_modules, torch.get_num_threads())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2", "1"]


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, from the source of every ``dae_tutor/*.py``.

    Counts every import statement, at module level or inside a function: ``import dae_tutor.X``,
    ``from dae_tutor import X`` (X a module; another name is ``__init__``'s), ``from dae_tutor.X import Y``
    and their relative forms. Not counted: the package's ``__init__`` that Python runs before any
    submodule (it imports only modules that import nothing back from it).
    """
    name = package.name
    modules = {path.stem for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        edges = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                parts = [alias.name.split(".") for alias in node.names]
                edges |= {p[1] for p in parts if len(p) > 1 and p[0] == name and p[1] in modules}
            elif isinstance(node, ast.ImportFrom):
                source = (node.module or "").split(".")
                if node.level == 0 and source[0] != name:
                    continue
                inner = source[1:] if node.level == 0 else [s for s in source if s]
                if inner:
                    edges.add(inner[0] if inner[0] in modules else "__init__")
                else:  # from dae_tutor import X, Y
                    edges |= {a.name if a.name in modules else "__init__" for a in node.names}
        edges.discard(path.stem)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or ``None`` when it has none (depth-first search)."""
    state: dict[str, str] = {}  # "open" on the current path, "done" when fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_detector_flags_a_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "dae_tutor"
    package.mkdir()
    (package / "__init__.py").write_text("from dae_tutor import a\n")
    (package / "a.py").write_text("import os\nimport dae_tutor.b\n")
    (package / "b.py").write_text("def f():\n    from dae_tutor.a import g\n")
    (package / "c.py").write_text("from . import b\nfrom .a import g\nfrom dae_tutor import __version__\n")
    graph = import_graph(package)
    assert graph == {"__init__": {"a"}, "a": {"b"}, "b": {"a"}, "c": {"a", "b", "__init__"}}
    assert find_cycle(graph) == ["a", "b", "a"]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"importance", "distributed", "stores"} <= set(graph)
    assert "distributed" not in graph["importance"]  # the cycle this test was written for
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_every_module_is_an_attribute_of_the_package():
    result = run_python(
        """
        import sys
        import types
        from pathlib import Path

        import dae_tutor

        files = sorted(p.stem for p in Path(dae_tutor.__file__).parent.glob("*.py") if p.stem != "__init__")
        listed = sorted(n for n in dae_tutor.__all__ if n not in ("__version__", "device"))
        assert listed == files, (listed, files)
        assert "dae_tutor.widgets" not in sys.modules  # imported on first access, not by the package
        for name in listed:
            module = getattr(dae_tutor, name)
            assert isinstance(module, types.ModuleType) and module is sys.modules[f"dae_tutor.{name}"], name
        assert dae_tutor.device is dae_tutor.runtime.device and isinstance(dae_tutor.__version__, str)
        assert set(dae_tutor.__all__) <= set(dir(dae_tutor))
        assert not hasattr(dae_tutor, "no_such_module")
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_api_appendix_documents_every_module():
    """api.md has exactly one ``automodule`` for each module of the package (twice is a Sphinx warning)."""
    text = (PACKAGE.parent / "api.md").read_text()
    documented = re.findall(r"automodule:: dae_tutor\.(\w+)", text)
    assert sorted(documented) == sorted({p.stem for p in PACKAGE.glob("*.py")} - {"__init__"})  # once each
