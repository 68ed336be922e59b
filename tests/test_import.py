"""Importing dae_tutor touches no network and sets torch's threads."""

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


def test_import_sets_threads_from_environment():
    result = run_python(
        "import os; os.environ['DAE_TUTOR_THREADS'] = '1'; import dae_tutor, torch; "
        "print(torch.get_num_threads())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
