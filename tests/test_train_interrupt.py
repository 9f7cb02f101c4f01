"""An interrupted training (Ctrl-C = SIGINT, ``kill`` = SIGTERM) saves the run, which loads, says in training.yml
that it was interrupted, and exits 130 / 143 as a killed command does."""

from __future__ import annotations

import queue
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import launch

from agents.benchmark import describe_agent
from agents.runs import resolve_agent

ENV = "MultiSpin-Heterogeneous-v0"
TINY = ["n_envs:2", "n_steps:32", "batch_size:32", "n_epochs:1", "policy_kwargs:dict(net_arch=[8])"]


def _wait_for_line(lines: queue.Queue[str], text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if text in line:
            return
    raise AssertionError(f"no line with {text!r} within {seconds} s")


def test_sigint_and_sigterm_save_the_run_and_exit_130_143(tmp_path: Path) -> None:
    runs = {signal.SIGINT: tmp_path / "int", signal.SIGTERM: tmp_path / "term"}
    procs = {}
    for signum, folder in runs.items():  # both at once: the start-up (imports, compilation) dominates
        argv = [
            "--algo",
            "ppo",
            "-n",
            "10000000",
            "--seed",
            "0",
            "-f",
            str(folder),
            "--eval-freq",
            "-1",
            "--verbose",
            "0",
            "--env-kwargs",
            "horizon:1.0",
            "-params",
            *TINY,
        ]
        procs[signum] = launch("multispin-train", argv, cwd=tmp_path)
    try:
        for signum, proc in procs.items():
            lines: queue.Queue[str] = queue.Queue()
            assert proc.stdout is not None
            threading.Thread(target=lambda out=proc.stdout, q=lines: [q.put(line) for line in out], daemon=True).start()
            _wait_for_line(lines, "Ctrl-C or SIGTERM", seconds=240)
            time.sleep(1.0)  # some rollouts
            proc.send_signal(signum)
        for signum, proc in procs.items():
            proc.wait(timeout=120)
            err = proc.stderr.read() if proc.stderr else ""
            assert proc.returncode == 128 + signum, (signum, proc.returncode, err[-2000:])
            assert "Traceback" not in err and f"interrupted by {signal.Signals(signum).name}" in err, err[-2000:]
    finally:
        for proc in procs.values():
            proc.kill()
    from stable_baselines3 import PPO

    for signum, folder in runs.items():
        run = folder / "ppo" / f"{ENV}_1"
        info = resolve_agent(run)
        assert info.kind == "final" and info.algo == "ppo"
        model = PPO.load(str(info.model_path), device="cpu")
        summary = yaml.safe_load((run / ENV / "training.yml").read_text())
        assert summary["interrupted"] is True and summary["signal"] == signal.Signals(signum).name
        assert 0 < summary["num_timesteps"] == model.num_timesteps < summary["planned_timesteps"]
        assert info.training["interrupted"] is True
        assert "training interrupted at" in describe_agent(run)


def test_write_atomic_replaces_whole_files_and_a_failed_write_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents import runs

    path = tmp_path / "training.yml"
    assert runs.write_atomic(path, "a: 1\r\n") == path and path.read_bytes() == b"a: 1\r\n"  # line ends as given
    path.chmod(0o600)
    runs.write_atomic(str(path), "b: \u00e9\n")
    assert path.read_text(encoding="utf-8") == "b: \u00e9\n" and path.stat().st_mode & 0o777 == 0o600  # mode kept
    link = tmp_path / "link.npz"
    link.symlink_to(tmp_path / "data.npz")
    runs.write_atomic(link, b"\x00\x01")
    assert link.is_symlink() and (tmp_path / "data.npz").read_bytes() == b"\x00\x01"  # written through the link
    link.unlink()
    (tmp_path / "data.npz").unlink()

    def killed_mid_rename(src: object, dst: object) -> None:  # a kill between the write and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.os, "replace", killed_mid_rename)
    with pytest.raises(KeyboardInterrupt):
        runs.write_atomic(path, "c: 3\n" * 1000)
    assert path.read_text(encoding="utf-8") == "b: \u00e9\n"  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["training.yml"]  # no temporary file left behind
