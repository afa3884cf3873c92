"""`make airflow`, as the README has a user start and stop it.

`airflow standalone` stops its components on Ctrl-C only; sent SIGTERM, it exits and
leaves its scheduler, DAG processor, API server and triggerer running. The make target
passes either signal on as Ctrl-C.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.airflow_stack import REPO, base_env, free_port, metadata_env

pytestmark = pytest.mark.e2e

COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def _session(sid: int) -> dict[int, str]:
    """The processes still alive in session ``sid``: their command lines by pid."""
    alive = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended while we looked
        if int(fields[3]) == sid and fields[0] != "Z":
            alive[int(stat.parent.name)] = command.strip()
    return alive


def _healthy(base_url: str) -> bool:
    try:
        health = httpx.get(f"{base_url}/api/v2/monitor/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all((health.get(c) or {}).get("status") == "healthy" for c in COMPONENTS)


def test_make_airflow_stops_every_component_on_sigterm(tmp_path):
    env = base_env(tmp_path, tmp_path / "data", free_port())
    log = tmp_path / "make-airflow.log"
    with log.open("w") as output:
        make = subprocess.Popen(
            ["make", "-s", "airflow", f"AIRFLOW_HOME={env['AIRFLOW_HOME']}"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the session the test counts survivors in
        )
    try:
        deadline = time.monotonic() + 420
        while not _healthy(env["AIRFLOW__API__BASE_URL"]):
            assert make.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(2)
        assert len(_session(make.pid)) > 4  # make, its shell, standalone and the components

        make.send_signal(signal.SIGTERM)  # to make alone, as `kill <pid>` or a supervisor
        make.wait(timeout=90)
        deadline = time.monotonic() + 30
        while _session(make.pid) and time.monotonic() < deadline:
            time.sleep(1)
        assert _session(make.pid) == {}, log.read_text()[-3000:]
        assert "Shutting down components" in log.read_text()
    finally:
        for pid in _session(make.pid):
            os.kill(pid, signal.SIGKILL)


def test_make_creates_the_venv_with_the_python_the_readme_names(tmp_path):
    """`make PYTHON=/path/to/python3.11 demo`: that interpreter makes the venv."""
    python = tmp_path / "bin" / "python3.11"
    out = subprocess.run(
        ["make", "-n", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}", "install"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"{python} -m venv {tmp_path / 'venv'}" in out.splitlines()


def test_make_env_gives_a_shell_the_airflow_and_ml_of_the_repository(tmp_path):
    """`eval "$(make -s env)"`, as the README has a user run the CLI by hand (here with the
    Airflow home and data folder moved to scratch ones)."""
    home, data = tmp_path / "airflow", tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ML_"))}
    shell = (
        f'eval "$(make -s env AIRFLOW_HOME={home} ML_DATA_DIR={data})" && '
        'command -v airflow ml && echo "$ML_DATA_DIR" && '
        "airflow config get-value database sql_alchemy_conn"
    )
    out = subprocess.run(
        ["bash", "-c", shell], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    venv = REPO / ".venv" / "bin"
    assert out.stdout.splitlines() == [
        str(venv / "airflow"),
        str(venv / "ml"),
        str(data),
        # The embedded database, whose writers wait their turn: the tests' stacks' form.
        metadata_env(home)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    ]


@pytest.mark.parametrize(
    ("exported", "kept"),
    [
        ("sqlite:////another/clone/.airflow/airflow.db", False),  # its `make env`, still set
        ("postgresql+psycopg2://airflow@db.example:5432/airflow", True),
    ],
)
def test_make_keeps_an_exported_server_database_and_not_another_homes_sqlite(
    tmp_path, exported, kept
):
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": exported}
    out = subprocess.run(
        ["make", "-s", "env", f"AIRFLOW_HOME={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    own = metadata_env(tmp_path)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert f"export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='{exported if kept else own}'" in out
