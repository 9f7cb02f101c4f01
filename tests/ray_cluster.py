"""A two-node Ray cluster on the local host for the cluster tests: ``ray start --head`` plus a second node started
with ``ray start --address``, each with its own ports and temp dir, stopped again whatever the test did.

Both nodes run ``ray start --block`` as children of the test process, each in a session of its own, so stopping the
cluster signals only these processes (SIGTERM, which makes ``ray start`` stop the node's raylet, GCS and workers;
SIGKILL of the node's process group if that does not finish in time) and never ``ray stop``, which would stop every
Ray on the machine, other users' included. Every port is picked free and every node gets a temp dir of its own, so
the cluster does not meet a local Ray started elsewhere on the machine.

The nodes and the drivers authenticate with a token of this cluster (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``):
Ray otherwise decides from a ``~/.ray/auth_token`` file that another Ray on the machine may have written, and the
head and a driver can disagree. :attr:`RayCluster.env` is the environment to start the drivers with.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: Seconds a node may take to start (``ray start`` printed "Ray runtime started"); on 2 busy cores the head takes
#: about 25 s.
START_TIMEOUT = 90.0
#: Seconds ``ray start --block`` may take to stop its node after SIGTERM before its process group is killed.
STOP_TIMEOUT = 20.0
STARTED = "Ray runtime started"
#: ``ray start`` options that name a port; each node gets its own free port for every one of them.
NODE_PORTS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)
HEAD_PORTS = ("--port", "--ray-client-server-port", "--dashboard-port")
#: Object store of each node, bytes (Ray's minimum is 75 MB; the jobs pass small results).
OBJECT_STORE = 100 * 1024 * 1024


#: Ports the cluster's services take, drawn from here: above Ray's worker ports (10002-19999) and below the usual
#: range of ephemeral ports (32768 up), which any outgoing connection on the machine may take meanwhile.
PORT_RANGE = (20000, 32000)


def free_ports(n: int, rng: random.Random | None = None) -> list[int]:
    """``n`` distinct TCP ports of :data:`PORT_RANGE` that are free now (each bound on every interface, as Ray
    binds them, then released)."""
    rng = rng or random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(*PORT_RANGE)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class RayCluster:
    """A running two-node cluster: its address, the environment of its drivers and its nodes' temp dirs."""

    address: str
    env: dict[str, str]
    temp_dirs: list[Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def session_logs(self, node: int) -> Path:
        """The log folder of node ``node`` (0: head, 1: the second node)."""
        return self.temp_dirs[node] / "session_latest" / "logs"

    def ran_on(self, node: int, marker: str) -> bool:
        """Whether a worker of node ``node`` ran a task or actor named by ``marker`` (``:task_name:NAME``,
        ``:actor_name:CLASS``: the lines Ray writes into a worker's log when it starts one)."""
        return any(marker in log.read_text(errors="replace") for log in self.session_logs(node).glob("worker-*.out"))

    def nodes(self, timeout: float = 60.0) -> list[dict[str, object]]:
        """The alive nodes as the cluster's GCS lists them (a driver in a subprocess, bounded)."""
        code = (
            "import json, ray; ray.init(address=__import__('sys').argv[1], log_to_driver=False); "
            "print(json.dumps([{'id': n['NodeID'], 'port': n['NodeManagerPort'], 'resources': n['Resources']} "
            "for n in ray.nodes() if n['Alive']])); ray.shutdown()"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, self.address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
        return list(json.loads(out.strip().splitlines()[-1]))


def _wait_started(process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if STARTED in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"ray start did not start a node within {timeout:.0f} s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one ``ray start --block`` and its node: SIGTERM, then SIGKILL of its process group (its own session)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


def _commands(root: Path, cpus_per_node: int) -> tuple[str, list[str], list[str]]:
    """The cluster's address and the ``ray start`` commands of its head and second node, on newly drawn ports."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    ports = free_ports(len(HEAD_PORTS) + 2 * len(NODE_PORTS))
    head_ports, node_ports = ports[: -len(NODE_PORTS)], ports[-len(NODE_PORTS) :]
    address = f"127.0.0.1:{head_ports[0]}"
    common = [
        "--block",
        "--disable-usage-stats",
        f"--num-cpus={cpus_per_node}",
        f"--object-store-memory={OBJECT_STORE}",
    ]
    head = [
        ray_bin,
        "start",
        "--head",
        "--include-dashboard=false",
        f"--temp-dir={root / 'head'}",
        *(f"{flag}={port}" for flag, port in zip((*HEAD_PORTS, *NODE_PORTS), head_ports, strict=True)),
        *common,
    ]
    node = [
        ray_bin,
        "start",
        f"--address={address}",
        f"--temp-dir={root / 'node2'}",
        "--resources",
        json.dumps({"node2": 1}),
        *(f"{flag}={port}" for flag, port in zip(NODE_PORTS, node_ports, strict=True)),
        *common,
    ]
    return address, head, node


@contextlib.contextmanager
def two_node_cluster(cpus_per_node: int = 1) -> Iterator[RayCluster]:
    """Start a head and a second node (``cpus_per_node`` CPUs each; the second also has the custom resource
    ``node2``), wait until both are up, yield the cluster and stop both nodes on the way out.

    The nodes import this checkout (``PYTHONPATH``: the repository and ``tests/``, so tasks defined in test modules
    run there too). A ``ray start`` that exits while starting (a port taken in the meantime) is tried once more on
    other ports. Raises TimeoutError when a node is not up within :data:`START_TIMEOUT` seconds.
    """
    # Short paths: Ray's Unix sockets live under the temp dir and a socket path has at most 107 characters.
    root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in (1, 2):
            address, head, node = _commands(root, cpus_per_node)
            try:
                for name, argv in (("head", head), ("node2", node)):
                    log = root / f"{name}-{attempt}.log"
                    with log.open("wb") as sink:
                        process = subprocess.Popen(
                            argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
                        )
                    processes.append(process)
                    _wait_started(process, log, START_TIMEOUT)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                for process in reversed(processes):
                    _stop(process)
                processes.clear()
        yield RayCluster(address, env, [root / "head", root / "node2"], processes)
    finally:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def die_once(job: Any, out: Path) -> dict[str, Any]:
    """A leaderboard job whose worker process dies on the job's first attempt (a marker file in ``out`` remembers
    the attempt) and that runs the job normally on the next one."""
    from agents.leaderboard import run_job

    marker = out / f"died-{job.entry}"
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        os._exit(1)  # the worker process dies, as when a node is lost: no exception reaches Ray
    return run_job(job, out)
