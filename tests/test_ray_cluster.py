"""A real two-node Ray cluster on the local host (tests/ray_cluster.py): ``multispin-rllib --address`` trains an RLlib
iteration with an env runner on each node, ``multispin-sweep --ray`` and ``multispin-leaderboard --ray`` run their
jobs as Ray tasks on both nodes, and a leaderboard job whose worker dies is run again. Slow and needs ray: ``make
test-rllib`` (part of ``make test-slow``) runs it in .venv-rllib."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

from ray_cluster import REPO, RayCluster, two_node_cluster  # noqa: E402

#: Seconds a command on the cluster may take before the test fails (and kills it): a guard against a hang, not a
#: speed target (a driver and a fresh worker each import torch and the agents, slow on busy cores).
COMMAND_TIMEOUT = 300.0
BOARD = [
    "--runs",
    "/nonexistent-runs",
    "--tasks",
    "IIDStatic",
    "--baselines",
    "equal-fixed",
    "het-opt-static",
    "--no-plots",
    "--reps",
    "100",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with two_node_cluster(cpus_per_node=1) as started:
        nodes = started.nodes()
        assert len(nodes) == 2 and sum(n["resources"].get("node2", 0) for n in nodes) == 1  # type: ignore[union-attr]
        yield started


def run(cluster: RayCluster, module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m module argv`` as a driver of the cluster, bounded by :data:`COMMAND_TIMEOUT`."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv],
        env=cluster.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def test_rllib_trains_an_iteration_with_an_env_runner_on_each_node(cluster: RayCluster, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--address", cluster.address, "--iterations", "1", "--train-batch", "128", "--minibatch", "64"]
    argv += ["--epochs", "1", "--num-env-runners", "2", "--envs-per-runner", "1", "--cpus-per-runner", "1"]
    argv += ["--env-kwargs", "num_users:3", "horizon:1.0", "fading:False", "-o", str(out)]
    run(cluster, "agents.rllib", argv)
    record = json.loads((out / "run.json").read_text())
    assert len(record["iterations"]) == 1 and record["iterations"][0]["env_steps"] >= 128
    assert (out / "checkpoint").is_dir()
    # One CPU per node and one per env runner: each node holds one of the two runners.
    assert cluster.ran_on(0, ":actor_name:SingleAgentEnvRunner")
    assert cluster.ran_on(1, ":actor_name:SingleAgentEnvRunner")


def test_sweep_runs_on_both_nodes(cluster: RayCluster, tmp_path: Path) -> None:
    # Each run holds its node's one CPU for a few seconds, so the two runs overlap and Ray must use both nodes (a
    # run that ended at once would free the head's CPU for the other).
    write = "import sys, time; time.sleep(5); open(sys.argv[1], 'w').write(sys.argv[2])"
    argv = ["--ray", cluster.address, "--seeds", "3", "4", "--log-dir", str(tmp_path / "logs"), "--"]
    argv += [sys.executable, "-c", write, str(tmp_path / "out_{seed}.txt"), "{seed}"]
    printed = run(cluster, "agents.sweep", argv).stdout
    assert "3: ok" in printed and "4: ok" in printed
    assert (tmp_path / "out_3.txt").read_text() == "3" and (tmp_path / "out_4.txt").read_text() == "4"
    assert cluster.ran_on(0, ":task_name:_run_value") and cluster.ran_on(1, ":task_name:_run_value")


def test_leaderboard_jobs_on_both_nodes_write_the_local_result_files(cluster: RayCluster, tmp_path: Path) -> None:
    from agents.leaderboard import main

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    printed = run(cluster, "agents.leaderboard", ["--ray", cluster.address, "-o", str(on_ray), *BOARD]).stdout
    assert "2 jobs (0 with training) on Ray (1 CPU per job)" in printed
    assert cluster.ran_on(0, ":task_name:run_job") and cluster.ran_on(1, ":task_name:run_job")
    assert main(["-o", str(local), "--jobs", "1", *BOARD]) == 0
    names = sorted(p.relative_to(local) for p in (local / "jobs").rglob("*.json"))
    assert names == sorted(p.relative_to(on_ray) for p in (on_ray / "jobs").rglob("*.json"))
    assert len(names) == 2
    for name in names:  # the same result, bar the measured seconds
        a, b = (json.loads((root / name).read_text()) for root in (local, on_ray))
        assert a.pop("eval_seconds") > 0 and b.pop("eval_seconds") > 0
        assert a == b


# A driver in a process of its own (Ray reads its authentication settings from the environment once, at import):
# the same job with retries and without, into two output folders.
DIE_ONCE = """
import json, sys
from pathlib import Path
from agents.leaderboard import Job, RayRunner, run_jobs
from ray_cluster import die_once
address, out = sys.argv[1], Path(sys.argv[2])
job = Job("analytic", "MultiSpinSuite/IIDStatic-v0", "equal-fixed")
for retries in (2, 0):
    results, errors = run_jobs([job], out / f"retries{retries}", 1, ray=RayRunner(address, retries=retries, job=die_once))
    print(json.dumps({"retries": retries, "entries": [r["entry"] for r in results], "errors": errors}))
"""


def test_a_leaderboard_job_whose_worker_dies_is_run_again(cluster: RayCluster, tmp_path: Path) -> None:
    from agents.leaderboard import Job

    proc = subprocess.run(
        [sys.executable, "-c", DIE_ONCE, cluster.address, str(tmp_path)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=True,
    )
    retried, not_retried = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"retries"'))
    job = Job("analytic", "MultiSpinSuite/IIDStatic-v0", "equal-fixed")
    # The first attempt died (its marker file), the second wrote the result.
    assert retried == {"retries": 2, "entries": ["equal-fixed"], "errors": []}
    assert (tmp_path / "retries2" / "died-equal-fixed").is_file()
    assert json.loads(job.result_path(tmp_path / "retries2").read_text())["entry"] == "equal-fixed"
    # Without retries the death is the job's failure, reported like any other; no result file.
    assert not_retried["entries"] == [] and len(not_retried["errors"]) == 1, not_retried
    assert not_retried["errors"][0].startswith("IIDStatic equal-fixed: ")
    assert (tmp_path / "retries0" / "died-equal-fixed").is_file() and not job.result_path(
        tmp_path / "retries0"
    ).exists()


def test_a_cluster_that_rejects_the_driver_is_a_one_line_error(cluster: RayCluster, tmp_path: Path) -> None:
    from cli_helpers import assert_one_line_error

    env = {**cluster.env, "RAY_AUTH_TOKEN": "0" * 64}  # the port answers, the token is not the cluster's
    argv = ["--ray", cluster.address, "-o", str(tmp_path / "out"), *BOARD]
    proc = subprocess.run(
        [sys.executable, "-m", "agents.leaderboard", *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    err = "\n".join(line for line in proc.stderr.splitlines() if ": error: " in line or "Traceback" in line)
    assert_one_line_error(
        proc.returncode, err, "python -m agents.leaderboard", f"could not connect to Ray at '{cluster.address}'"
    )
    assert not (tmp_path / "out" / "jobs").exists()
