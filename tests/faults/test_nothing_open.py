"""Nothing open by default: the embedded Ray listens on loopback only, runs no dashboard and
reports no usage, keeps its temp dir inside the sweep folder; YAML never constructs objects;
what the tool writes into results/ is data (Parquet, JSON, YAML, figures), nothing
executable, nothing to unpickle. And attaching to a cluster with token authentication works
when the token is given the cluster's way (Ray's variables)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import faultkit
import pytest

from hptransfer.cli.main import main
from hptransfer.errors import ConfigError
from hptransfer.runtime.cluster import ray_temp_dir
from hptransfer.sweep import load_spec

PACKAGE = faultkit.REPO / "hptransfer"
DATA_SUFFIXES = {".parquet", ".json", ".yaml", ".png", ".svg", ".md"}
PICKLE_MAGIC = b"\x80"  # protocol 2 and later start with PROTO


def ray_processes(reference) -> list[list[str]]:
    return [cmd for cmd in reference["cmdlines"] if any("ray" in part for part in cmd[:2])]


def test_embedded_ray_listens_on_loopback_only(reference):
    assert reference["code"] == 0, reference["stderr"]
    assert reference["sockets"], "no listening socket seen: the watcher missed the sweep"
    outside = sorted(a for a in reference["sockets"] if not faultkit.is_loopback(a))
    assert outside == [], f"listening beyond loopback: {outside}"


def test_no_dashboard_and_no_usage_reporting(reference):
    ports = {int(address.rsplit(":", 1)[1]) for address in reference["sockets"]}
    assert 8265 not in ports  # the dashboard's port
    for cmd in ray_processes(reference):
        if any(part.endswith("dashboard/dashboard.py") for part in cmd):
            # Ray's minimal head process (no web UI) may run; a full dashboard may not.
            assert "--minimal" in cmd and "--disable-frontend" in cmd, cmd
    ray_envs = [env for env in reference["environs"] if "RAY_USAGE_STATS_ENABLED" in env]
    assert ray_envs and all(env["RAY_USAGE_STATS_ENABLED"] == "0" for env in ray_envs)


def test_embedded_ray_refuses_to_start_beyond_loopback(tmp_path):
    """Ray imported before hptransfer could set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 would
    bind every interface: the sweep refuses, in one line, before Ray starts."""
    script = (
        "import sys, ray\n"
        "if ray.util.get_node_ip_address().startswith('127.'): sys.exit(77)\n"
        "from hptransfer.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    spec = faultkit.write_yaml(tmp_path / "spec.yaml", faultkit.tiny_spec())
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    done = subprocess.run(
        [sys.executable, "-c", script, "sweep", str(spec), "--results", str(results)],
        cwd=faultkit.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=faultkit.SWEEP_TIMEOUT_S,
    )
    if done.returncode == 77:
        pytest.skip("this machine has no network interface besides loopback")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "not only on loopback" in done.stderr
    assert not (results / "tiny" / "trials.parquet").exists()
    assert not (results / "tiny" / "ray").exists()


def test_ray_temp_dir_is_inside_the_sweep_folder(reference):
    inside = str(reference["dir"].resolve() / "ray" / "tmp")
    assert str(ray_temp_dir(reference["dir"])) == inside  # short enough for Ray's sockets
    temp_dirs = {
        match.group(1)
        for cmd in ray_processes(reference)
        for part in cmd
        if (match := re.match(r"--temp[-_]dir=(.+)", part))
    }
    assert temp_dirs == {inside}
    assert not (reference["dir"] / "ray" / "tmp").exists()  # removed when the sweep ended


def test_yaml_never_constructs_objects(tmp_path):
    proof = tmp_path / "constructed"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {proof}']\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_spec(path)
    assert not proof.exists()
    # Every YAML read in the package goes through safe_load (or safe_dump to write).
    calls = {
        match
        for source in PACKAGE.rglob("*.py")
        for match in re.findall(r"yaml\.(\w+)\(", source.read_text())
    }
    assert calls and calls <= {"safe_load", "safe_dump"}, calls


def test_results_are_data_only_nothing_executable_nothing_to_unpickle(reference, tmp_path):
    """The reference sweep's folder after ``hptransfer fit`` and ``hptransfer plot``."""
    sweep = tmp_path / "results" / reference["dir"].name
    shutil.copytree(reference["dir"], sweep)
    assert main(["fit", str(sweep)]) == 0
    assert main(["plot", str(sweep)]) == 0
    files = [path for path in sweep.rglob("*") if path.is_file()]
    assert {path.suffix for path in files} >= {".parquet", ".yaml", ".json", ".png", ".svg"}
    for path in files:
        assert path.suffix in DATA_SUFFIXES or path.name == "sweep.lock", path
        assert "ray" not in path.relative_to(sweep).parts, f"Ray left {path}"
        assert not path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH), path
        assert not path.read_bytes().startswith(PICKLE_MAGIC), f"{path} is a pickle"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_attach_to_a_cluster_with_token_authentication(root):
    """A loopback Ray head with token auth: a sweep given its token in RAY_AUTH_TOKEN runs
    there; without it, one line saying which variables carry a token, exit 2."""
    token = secrets.token_hex(16)
    home = Path(tempfile.mkdtemp(prefix="home", dir=root))  # nothing goes to the real ~/.ray
    port = free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "HOME": str(home)}
    head = faultkit.start(
        ["ray", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={root / 'head'}", "--block"],
        env={**faultkit.QUIET_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **auth},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        faultkit.wait_until(
            lambda: any(
                a.endswith(f":{port}") for a in faultkit.listening(faultkit.descendants(head.pid))
            ),
            head,
            120,
            "a listening Ray head",
        )
        spec = faultkit.write_yaml(root / "attached.yaml", faultkit.tiny_spec(name="attached"))
        command = faultkit.cli(
            "sweep", str(spec), "--results", str(root / "results"), "--address", f"127.0.0.1:{port}"
        )
        without = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        refused = subprocess.run(
            command,
            cwd=faultkit.REPO,
            env={**without, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=faultkit.SWEEP_TIMEOUT_S,
        )
        assert refused.returncode == 2
        error = [line for line in refused.stderr.splitlines() if line.startswith("hptransfer")]
        assert len(error) == 1 and "RAY_AUTH_TOKEN" in error[0], refused.stderr
        attached = subprocess.run(
            command,
            cwd=faultkit.REPO,
            env={**os.environ, **auth},
            capture_output=True,
            text=True,
            timeout=faultkit.SWEEP_TIMEOUT_S,
        )
        assert attached.returncode == 0, attached.stderr
        assert not (home / ".ray").exists()
    finally:
        faultkit.kill_tree(head)
