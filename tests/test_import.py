"""Importing dae_tutor touches no network, leaves torch's threads alone and exposes every module."""

import subprocess
import sys
import textwrap


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
