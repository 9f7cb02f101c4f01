"""Training until flat (agents/converge.py): the flatness criterion against its definition, the chunk schedule,
the cap, the best model over chunks and resuming a killed run from its finished chunks (a fake chunk trainer
writes what a training writes: the final model, the best model and the validation curve)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.converge import FLAT_TOLERANCE, FLAT_WINDOW, flatness, train_until_flat


def test_flatness_is_the_best_so_far_at_80_against_100_percent() -> None:
    steps = np.arange(0, 101, 10)
    flat = np.r_[np.linspace(50, 100, 9), 100.3, 100.4]  # +0.4% after 80%: flat
    assert flatness(steps, flat, 100)["flat"]
    rising = np.r_[np.linspace(50, 100, 9), 100.3, 100.6]  # +0.6%: not flat
    c = flatness(steps, rising, 100)
    assert not c["flat"] and c["best_at_80"] == 100.0 and c["improvement"] == pytest.approx(0.006)
    falling = np.r_[np.linspace(50, 100, 9), 90.0, 80.0]  # worse at the end: flat (the best does not improve)
    assert flatness(steps, falling, 100)["improvement"] == 0.0
    assert not flatness(np.array([100.0]), np.array([1.0]), 100)["flat"]  # no point within the first 80%


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-200.0, 200.0).filter(lambda v: abs(v) >= 1.0), min_size=2, max_size=30), st.integers(1, 10_000)
)
def test_flatness_matches_its_definition(values: list[float], total: int) -> None:
    steps = np.linspace(0, total, len(values))
    c = flatness(steps, np.array(values), total)
    early = [v for t, v in zip(steps, values, strict=True) if t <= (1 - FLAT_WINDOW) * total]
    best80, best = max(early), max(values)
    assert c["best_at_80"] == best80 and c["best_at_100"] == best
    assert c["flat"] == ((best - best80) / abs(best80) < FLAT_TOLERANCE)  # negative: a completion time, signed


def test_flatness_refuses_bad_curves() -> None:
    with pytest.raises(ValueError, match="matching non-empty"):
        flatness(np.array([0, 1]), np.array([1.0]), 1)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN or"):
            flatness(np.array([0, 1]), np.array([1.0, bad]), 1)
    # Undefined values (-inf: e.g. no request decided yet) in the first 80%: not flat, whatever comes after.
    undefined = flatness(np.arange(0, 101, 10), np.r_[np.full(9, -np.inf), 1.0, 1.0], 100)
    assert not undefined["flat"] and undefined["improvement"] == np.inf


def write_run_files(run: Path, budget: int, interrupted: bool = False) -> None:
    """What rl-zoo3 and agents.train write beside a run's model: ``{env}/args.yml`` and ``{env}/training.yml``."""
    params = run / "Task"
    params.mkdir(exist_ok=True)
    (params / "args.yml").write_text(yaml.safe_dump({"algo": "ppo", "env": "Task", "seed": 1}))
    (params / "training.yml").write_text(
        yaml.safe_dump(
            {
                "planned_timesteps": budget,
                "num_timesteps": budget // 2 if interrupted else budget,
                "interrupted": interrupted,
            }
        )
    )


class FakeTrainer:
    """Writes a chunk like a training: the validation curve goodput(t) = top (1 - exp(-t / scale)) of the run's
    steps t at 11 points of the chunk, the final and best models and the run's args.yml and training.yml; in chunk
    ``fail_at`` saves the model trained so far as interrupted and raises (a killed run)."""

    def __init__(
        self,
        top: float = 100.0,
        scale: float = 300.0,
        fail_at: int | None = None,
        selection: dict[int, float] | None = None,
    ) -> None:
        self.top, self.scale, self.fail_at = top, scale, fail_at
        #: chunk index -> the selection value of all its evaluations (the callback's "selection"; None: not written)
        self.selection = selection
        self.calls: list[tuple[str, int, str | None]] = []

    def __call__(self, folder: Path, budget: int, previous: Path | None) -> None:
        start = 0 if previous is None else int(json.loads(previous.read_text())["end"])
        index = int(folder.name[5:])
        self.calls.append((folder.name, budget, None if previous is None else previous.parents[2].name))
        run = folder / "ppo" / "Task_1"
        run.mkdir(parents=True)
        if index == self.fail_at:
            (run / "Task.zip").write_text(json.dumps({"end": start + budget // 2}))
            write_run_files(run, budget, interrupted=True)
            raise KeyboardInterrupt
        t = np.linspace(0, budget, 11)
        goodput = self.top * (1 - np.exp(-(start + t) / self.scale))
        extra = (
            {}
            if self.selection is None
            else {
                "selection": np.full(t.size, self.selection.get(index, np.nan)),
                "selection_metric": np.array("throughput_geomean"),
            }
        )
        np.savez(
            run / "evaluations.npz", timesteps=t.astype(np.int64), goodput=np.repeat(goodput[:, None], 3, 1), **extra
        )
        (run / "Task.zip").write_text(json.dumps({"end": start + budget}))
        (run / "best_model.zip").write_text(json.dumps({"best": float(goodput.max())}))
        write_run_files(run, budget)


def test_chunks_double_until_flat_and_the_best_model_is_the_last_best(tmp_path: Path) -> None:
    trainer = FakeTrainer()
    record = train_until_flat(tmp_path / "run", 100, 100_000, trainer)
    budgets = [b for _, b, _ in trainer.calls]
    assert budgets[:4] == [100, 100, 200, 400]
    assert [p for _, _, p in trainer.calls] == [None] + [f"chunk{i}" for i in range(len(budgets) - 1)]
    assert record["status"] == "flat" and record["converged"] and record["budget"] == sum(budgets)
    assert record["improvement"] < FLAT_TOLERANCE
    # The criterion's own figures: exp saturation, best at 80% against the end.
    total = record["budget"]
    assert record["best_at_100"] == pytest.approx(100 * (1 - np.exp(-total / 300)))
    assert record["chunks"][-1]["start"] + record["chunks"][-1]["timesteps"] == total
    assert Path(record["best_model"]).parent.parent.parent.name == f"chunk{len(budgets) - 1}"
    assert all(c["cpu_seconds"] >= 0 and c["wall_seconds"] >= 0 for c in record["chunks"])
    # Run again: every chunk is kept, nothing trained.
    again = FakeTrainer()
    assert train_until_flat(tmp_path / "run", 100, 100_000, again)["budget"] == total and again.calls == []


def test_the_best_model_and_flatness_follow_the_selection_value(tmp_path: Path) -> None:
    """A task of another metric: the callback's selection value (that metric) picks the best model and is the curve
    judged flat, not the goodput. Here the goodput still rises while the metric peaks in chunk 1 and then stays:
    the run is flat on the metric long before the goodput would be; chunk 0's value is undefined."""
    trainer = FakeTrainer(selection={0: np.nan, 1: 0.9, 2: 0.4, 3: 0.5, 4: 0.5, 5: 0.5, 6: 0.5})
    record = train_until_flat(tmp_path / "run", 100, 100_000, trainer)
    assert Path(record["best_model"]).parent.parent.parent.name == "chunk1"
    assert record["best_at_100"] == 0.9 and record["status"] == "flat"
    plain = train_until_flat(tmp_path / "plain", 100, 100_000, FakeTrainer())  # no selection: the goodput
    assert record["budget"] < plain["budget"]
    assert (record["judged_on"], plain["judged_on"]) == ("throughput_geomean", "goodput")
    assert plain["best_at_100"] == pytest.approx(100 * (1 - np.exp(-plain["budget"] / 300)))


def test_the_cap_stops_a_run_that_still_improves(tmp_path: Path) -> None:
    trainer = FakeTrainer(scale=1e6)  # still rising steeply at the cap
    record = train_until_flat(tmp_path / "run", 100, 700, trainer)
    assert [b for _, b, _ in trainer.calls] == [100, 100, 200, 300]  # the last chunk is cut to the cap
    assert record["status"] == "cap" and not record["converged"] and record["budget"] == 700
    assert record["improvement"] > FLAT_TOLERANCE


def test_a_minimum_budget_holds_the_verdict_back(tmp_path: Path) -> None:
    """A run flat from its first chunks (a curve saturated early, as a residual agent's that starts at its controller)
    trains on to the minimum budget; then the criterion decides as before."""
    plain = train_until_flat(tmp_path / "plain", 100, 100_000, FakeTrainer(scale=10.0))
    assert plain["status"] == "flat" and plain["budget"] == 100 and plain["min_budget"] == 0
    trainer = FakeTrainer(scale=10.0)
    record = train_until_flat(tmp_path / "run", 100, 100_000, trainer, minimum=1000)
    assert [b for _, b, _ in trainer.calls] == [100, 100, 200, 400, 800]  # 800 < 1000 < 1600 steps
    assert record["status"] == "flat" and record["converged"] and record["budget"] == 1600
    assert record["min_budget"] == 1000
    capped = train_until_flat(tmp_path / "capped", 100, 700, FakeTrainer(scale=10.0), minimum=700)
    assert capped["budget"] == 700 and capped["status"] == "flat"  # the minimum reached at the cap: flat
    with pytest.raises(ValueError, match="minimum budget <= cap"):
        train_until_flat(tmp_path / "bad", 100, 700, FakeTrainer(), minimum=701)


def test_a_larger_minimum_trains_on_from_the_chunks_and_a_smaller_one_keeps_them(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = train_until_flat(run, 100, 100_000, FakeTrainer(scale=10.0))
    assert first["budget"] == 100
    more = FakeTrainer(scale=10.0)
    record = train_until_flat(run, 100, 100_000, more, minimum=1000)
    assert [(name, b) for name, b, _ in more.calls] == [
        ("chunk1", 100),
        ("chunk2", 200),
        ("chunk3", 400),
        ("chunk4", 800),
    ]
    assert more.calls[0][2] == "chunk0" and record["budget"] == 1600  # continued from chunk 0, which was kept
    again = FakeTrainer(scale=10.0)
    kept = train_until_flat(run, 100, 100_000, again, minimum=0)  # flat at chunk 0, but chunks 1-4 are finished
    assert again.calls == [] and kept["budget"] == 1600 and kept["status"] == "flat" and kept["min_budget"] == 0


def test_finished_chunks_past_the_flat_point_are_kept_only_when_they_may_be(tmp_path: Path) -> None:
    """A run flat at chunk 0 judges after the later finished chunks only if they could be kept: trained with this
    entry and not interrupted; else it stops at chunk 0 instead of training them again."""
    for edit in ("fingerprint", "interrupted"):
        run = tmp_path / edit
        train_until_flat(run, 100, 100_000, FakeTrainer(scale=10.0), minimum=1000, fingerprint="a")
        record_file = run / "chunk1" / "chunk.json"
        if edit == "fingerprint":
            record_file.write_text(json.dumps({**json.loads(record_file.read_text()), "hyperparameters": "b"}))
        else:
            write_run_files(run / "chunk1" / "ppo" / "Task_1", 100, interrupted=True)
        trainer = FakeTrainer(scale=10.0)
        record = train_until_flat(run, 100, 100_000, trainer, fingerprint="a")
        assert trainer.calls == [] and record["budget"] == 100 and record["status"] == "flat", edit


def test_a_killed_run_resumes_from_its_last_finished_chunk(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer(fail_at=2))
    assert (tmp_path / "run" / "chunk1" / "chunk.json").is_file()
    assert not (tmp_path / "run" / "chunk2" / "chunk.json").exists()
    resumed = FakeTrainer()
    record = train_until_flat(tmp_path / "run", 100, 100_000, resumed)
    assert resumed.calls[0] == ("chunk2", 200, "chunk1")  # from chunk 1's final model, chunk 2 trained again
    assert record["status"] == "flat"
    reference = train_until_flat(tmp_path / "fresh", 100, 100_000, FakeTrainer())
    assert record["budget"] == reference["budget"] and record["best_at_100"] == reference["best_at_100"]


def test_chunks_validated_on_another_value_than_the_metric_train_again(tmp_path: Path) -> None:
    """Chunks validated on goodput (before the callback selected on the task's metric) cannot be judged on the
    metric: with ``metric`` given they train again from chunk 0, and the run is judged on the metric; chunks of that
    metric are kept, and without ``metric`` nothing is checked."""
    old = train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer())
    assert old["judged_on"] == "goodput"
    kept = FakeTrainer()
    train_until_flat(tmp_path / "run", 100, 100_000, kept)  # no metric given: the goodput chunks are kept
    assert kept.calls == []
    again = FakeTrainer(selection={0: np.nan, 1: 0.9, 2: 0.4, 3: 0.5, 4: 0.5, 5: 0.5, 6: 0.5})
    record = train_until_flat(tmp_path / "run", 100, 100_000, again, metric="throughput_geomean")
    assert again.calls[0] == ("chunk0", 100, None) and record["judged_on"] == "throughput_geomean"
    same = FakeTrainer()
    train_until_flat(tmp_path / "run", 100, 100_000, same, metric="throughput_geomean")
    assert same.calls == []


def test_chunks_trained_with_another_hyperparameter_entry_train_again(tmp_path: Path) -> None:
    """A chunk records the entry's fingerprint: the same one keeps every chunk, another one trains the run again from
    chunk 0; chunks recorded before fingerprints were kept (none in their chunk.json) are kept."""
    first = train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer(), fingerprint="a")
    assert first["hyperparameters"] == "a" and all(c["hyperparameters"] == "a" for c in first["chunks"])
    same = FakeTrainer()
    assert train_until_flat(tmp_path / "run", 100, 100_000, same, fingerprint="a")["budget"] == first["budget"]
    assert same.calls == []
    other = FakeTrainer()
    record = train_until_flat(tmp_path / "run", 100, 100_000, other, fingerprint="b")
    assert other.calls[0] == ("chunk0", 100, None) and len(other.calls) == len(first["chunks"])
    assert all(c["hyperparameters"] == "b" for c in record["chunks"])
    unchecked = FakeTrainer()  # no fingerprint given: the stamped chunks are kept
    train_until_flat(tmp_path / "run", 100, 100_000, unchecked)
    assert unchecked.calls == []
    train_until_flat(tmp_path / "old", 100, 100_000, FakeTrainer())  # no fingerprint recorded
    kept = FakeTrainer()
    train_until_flat(tmp_path / "old", 100, 100_000, kept, fingerprint="c")
    assert kept.calls == []


def test_unrecorded_chunks_are_of_version_1_and_train_again_where_a_wrapper_is_newer(tmp_path: Path) -> None:
    """A chunk recorded before fingerprints were kept was trained on version 1 of every training wrapper: kept under
    a fingerprint that names no newer version, trained again under one that does (``+task-reward2``)."""
    from agents.converge import hyperparameters_fingerprint, unrecorded_matches

    train_until_flat(tmp_path / "old", 100, 100_000, FakeTrainer())  # no fingerprint recorded
    newer = FakeTrainer()
    record = train_until_flat(tmp_path / "old", 100, 100_000, newer, fingerprint="c+task-reward2")
    assert newer.calls[0] == ("chunk0", 100, None) and all(
        c["hyperparameters"] == "c+task-reward2" for c in record["chunks"]
    )
    assert unrecorded_matches(hyperparameters_fingerprint("ppo_fast", "MultiSpinSuite/IIDStatic-v0"))
    assert not unrecorded_matches(hyperparameters_fingerprint("ppo_fast", "MultiSpinSuite/Fairness-v0"))
    assert not unrecorded_matches(hyperparameters_fingerprint("ppo_residual", "MultiSpinSuite/IIDStatic-v0"))


def test_an_entry_edited_during_the_run_trains_the_run_again_from_chunk_0(tmp_path: Path) -> None:
    """The fingerprint is read before every chunk (each chunk's training reads the file again): after an edit between
    chunks, no chunk of the old entry is continued or kept, and every chunk of the result carries the new one."""
    reference = train_until_flat(tmp_path / "fresh", 100, 100_000, FakeTrainer(), fingerprint="b")
    reads: list[str] = []
    trainer = FakeTrainer(top=200.0)  # the old entry's chunk learns another curve: none of it may be kept

    def entry() -> str:  # edited after the first chunk trained
        reads.append("a" if len(reads) < 1 else "b")
        trainer.top = 200.0 if reads[-1] == "a" else 100.0
        return reads[-1]

    record = train_until_flat(tmp_path / "run", 100, 100_000, trainer, fingerprint=entry)
    assert trainer.calls[0] == ("chunk0", 100, None) and trainer.calls[1] == ("chunk0", 100, None)  # started again
    assert len(trainer.calls) == 1 + len(reference["chunks"])
    assert record["hyperparameters"] == "b" and all(c["hyperparameters"] == "b" for c in record["chunks"])
    assert record["budget"] == reference["budget"] and record["best_at_100"] == reference["best_at_100"]
    stamped = [
        json.loads(p.read_text())["hyperparameters"] for p in sorted((tmp_path / "run").glob("chunk*/chunk.json"))
    ]
    assert stamped == ["b"] * len(reference["chunks"])
    assert record["best_model"] == str(tmp_path / "run" / Path(reference["best_model"]).relative_to(tmp_path / "fresh"))


def test_an_entry_that_keeps_changing_stops_the_run(tmp_path: Path) -> None:
    from agents.converge import MAX_RESTARTS

    reads = iter(range(10_000))
    with pytest.raises(RuntimeError, match=f"changed {MAX_RESTARTS + 1} times while it trained"):
        train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer(), fingerprint=lambda: str(next(reads)))


def test_the_fingerprint_follows_the_entry_a_task_trains_with() -> None:
    from agents.converge import hyperparameters, hyperparameters_fingerprint

    assert hyperparameters("ppo_fast", "MultiSpinSuite/EnergyBudget-v0")["gae_lambda"] == 0.95
    energy, deadlines, base = (
        hyperparameters_fingerprint("ppo_fast", task)
        for task in ("MultiSpinSuite/EnergyBudget-v0", "MultiSpinSuite/Deadlines-v0", "MultiSpin-Heterogeneous-v0")
    )
    assert deadlines == base != energy  # Deadlines trains with the base id's entry
    assert hyperparameters_fingerprint("ppo", "MultiSpin-Heterogeneous-v0") != base


def test_the_fingerprint_follows_the_task_rewards_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """From version 2 on, the version of the task reward an entry trains on is part of the fingerprint (a run
    trained on an older reward trains again); at version 1 it is the entry's hash alone, so the runs of every other
    reward keep their fingerprints."""
    import agents.wrappers
    from agents.converge import hyperparameters, hyperparameters_fingerprint, task_reward_of

    arrivals, fairness, deadlines = (
        "MultiSpinSuite/ArrivalsHeavy-v1",
        "MultiSpinSuite/Fairness-v0",
        "MultiSpinSuite/Deadlines-v0",
    )
    monkeypatch.setitem(agents.wrappers.TASK_REWARD_VERSIONS, "completion_mean", 2)  # as if it had changed
    versions = dict(agents.wrappers.TASK_REWARD_VERSIONS)
    assert [task_reward_of(hyperparameters("ppo_fast", t), t) for t in (arrivals, fairness, deadlines)] == [
        versions["completion_mean"],
        versions["throughput_geomean"],
        versions["deadline_share"],
    ]
    entry = hyperparameters("ppo_fast", arrivals)
    logged = {**entry, "vec_env_wrapper": [{"agents.wrappers.VecTaskReward": {"fairness": "log"}}]}
    assert task_reward_of(logged, fairness) == 1  # the log fairness reward is unchanged
    assert task_reward_of({**entry, "vec_env_wrapper": ["agents.wrappers.VecRateReward"]}, arrivals) == 1
    explicit = {**entry, "vec_env_wrapper": [{"agents.wrappers.VecTaskReward": {"metric": "completion_mean"}}]}
    assert task_reward_of(explicit, "MultiSpin-Heterogeneous-v0") == versions["completion_mean"]
    now = {t: hyperparameters_fingerprint("ppo_fast", t) for t in (arrivals, fairness, deadlines)}
    monkeypatch.setitem(agents.wrappers.TASK_REWARD_VERSIONS, "completion_mean", 1)
    assert hyperparameters_fingerprint("ppo_fast", arrivals) != now[arrivals]
    assert hyperparameters_fingerprint("ppo_fast", deadlines) == now[deadlines]  # another reward, unchanged
    monkeypatch.setitem(agents.wrappers.TASK_REWARD_VERSIONS, "completion_mean", versions["completion_mean"] + 1)
    assert len({hyperparameters_fingerprint("ppo_fast", arrivals), now[arrivals]}) == 2


def test_the_fingerprint_follows_the_residual_wrappers_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """A residual agent's fingerprint carries VecResidual's version from 2 on; an agent without the wrapper's does
    not change with it."""
    import agents.residual
    from agents.converge import hyperparameters_fingerprint

    task = "MultiSpinSuite/IIDStatic-v0"
    now = {agent: hyperparameters_fingerprint(agent, task) for agent in ("ppo_residual", "ppo_fast")}
    monkeypatch.setattr(agents.residual, "VERSION", 1)
    assert hyperparameters_fingerprint("ppo_residual", task) != now["ppo_residual"]
    assert hyperparameters_fingerprint("ppo_fast", task) == now["ppo_fast"]


def test_another_first_chunk_trains_again(tmp_path: Path) -> None:
    train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer())
    other = FakeTrainer()
    record = train_until_flat(tmp_path / "run", 200, 100_000, other)
    assert other.calls[0] == ("chunk0", 200, None) and record["first_chunk"] == 200
    with pytest.raises(ValueError, match="first chunk <= cap"):
        train_until_flat(tmp_path / "run", 200, 100, other)


@pytest.mark.parametrize("change", ["interrupted", "budget"])
def test_a_chunk_whose_training_was_interrupted_or_planned_another_budget_trains_again(
    tmp_path: Path, change: str
) -> None:
    """A chunk with its chunk.json is kept only when its training.yml says it finished the chunk's budget."""
    reference = train_until_flat(tmp_path / "run", 100, 100_000, FakeTrainer())
    chunk1 = tmp_path / "run" / "chunk1" / "ppo" / "Task_1"
    write_run_files(chunk1, 100 if change == "interrupted" else 300, interrupted=change == "interrupted")
    again = FakeTrainer()
    record = train_until_flat(tmp_path / "run", 100, 100_000, again)
    assert again.calls[0] == ("chunk1", 100, "chunk0")
    assert record["budget"] == reference["budget"] and record["best_at_100"] == reference["best_at_100"]


def test_one_wrapper_without_a_list_is_read_as_rl_zoo3_reads_it() -> None:
    """rl-zoo3 takes ``vec_env_wrapper`` as a list, one dotted name or one {name: kwargs} mapping."""
    from agents.converge import task_reward_of
    from agents.wrappers import TASK_REWARD_VERSIONS

    task, metric = "MultiSpinSuite/Fairness-v0", "throughput_geomean"
    assert task_reward_of({"vec_env_wrapper": "agents.wrappers.VecTaskReward"}, task) == TASK_REWARD_VERSIONS[metric]
    assert task_reward_of({"vec_env_wrapper": {"agents.wrappers.VecTaskReward": {"fairness": "log"}}}, task) == 1
    assert task_reward_of({"vec_env_wrapper": "agents.wrappers.VecHorizonTermination"}, task) == 1
