"""Environment versioning (Gymnasium's rule): a registered id keeps its dynamics; a change of dynamics is a new version.

Each registered id of this package has a fingerprint in ``tests/env_fingerprints.json``: the SHA-256 of a seeded
200-round trajectory under a fixed action sequence (observations, rewards, terminations, truncations and the
round's info), floats rounded to 10 significant digits so that last-bit differences between platforms' maths
libraries do not count as a change. A change of what an id computes fails :func:`test_every_id_keeps_its_dynamics`
until the id's version is bumped (``-v0`` -> ``-v1``), the CHANGELOG says why, and the fingerprint file is
updated::

    python tests/test_versioning.py --update    # adds new ids, drops unregistered ones; refuses to change one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import multispin_env  # noqa: F401  (registers the ids)

FINGERPRINTS = Path(__file__).with_name("env_fingerprints.json")
ROUNDS = 200
SEED = 2026
#: The info entries hashed: every id's info has them every round (docs/model.md section 8).
INFO_KEYS = (
    "tokens",
    "accepted",
    "draft_lengths",
    "bandwidth",
    "dropped",
    "energy",
    "latency",
    "sync_time",
    "verify_time",
    "clock",
)
SIGNIFICANT_DIGITS = 10


def registered_ids() -> list[str]:
    """Every id in Gymnasium's registry whose env class is this package's (base ids and suite tasks)."""
    return sorted(
        env_id
        for env_id, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("multispin_env.")
    )


def _canonical(value: object) -> bytes:
    """Bytes of ``value`` that do not depend on the platform: shape, kind and floats to 10 significant digits."""
    array = np.asarray(value)
    if array.dtype.kind == "f":
        text = ",".join(format(float(x), f".{SIGNIFICANT_DIGITS - 1}e") for x in array.ravel())
    else:
        text = ",".join(str(int(x)) for x in array.ravel())
    return f"{array.dtype.kind}{array.shape}:{text};".encode()


def fingerprint(env_id: str, rounds: int = ROUNDS, seed: int = SEED) -> str:
    """SHA-256 of ``rounds`` steps of ``gym.make(env_id)`` from ``reset(seed=seed)`` under fixed actions.

    Actions are uniform on the action box from ``np.random.default_rng(seed)`` (not the space's own sampler, whose
    algorithm Gymnasium may change); an episode that ends is reset without a seed (the env's generator goes on).
    """
    env = gym.make(env_id)
    actions = np.random.default_rng(seed)
    digest = hashlib.sha256()
    obs, info = env.reset(seed=seed)
    digest.update(_canonical(obs))
    for _ in range(rounds):
        action = actions.uniform(-1.0, 1.0, env.action_space.shape).astype(env.action_space.dtype)
        obs, reward, terminated, truncated, info = env.step(action)
        for part in (obs, reward, terminated, truncated, *(info[key] for key in INFO_KEYS)):
            digest.update(_canonical(part))
        if terminated or truncated:
            obs, info = env.reset()
            digest.update(b"reset" + _canonical(obs))
    env.close()
    return digest.hexdigest()


def stored() -> dict[str, str]:
    return json.loads(FINGERPRINTS.read_text())


def test_every_registered_id_has_a_fingerprint_and_no_other() -> None:
    ids, known = registered_ids(), stored()
    assert "MultiSpin-Heterogeneous-v0" in ids and any(i.startswith("MultiSpinSuite/") for i in ids)
    missing, stale = sorted(set(ids) - set(known)), sorted(set(known) - set(ids))
    assert not missing and not stale, (
        f"ids without a fingerprint {missing}, fingerprints of unregistered ids {stale}: "
        "run `python tests/test_versioning.py --update`"
    )


@pytest.mark.parametrize("env_id", registered_ids())
def test_every_id_keeps_its_dynamics(env_id: str) -> None:
    expected = stored().get(env_id)
    if expected is None:
        pytest.fail(f"{env_id} has no fingerprint: run `python tests/test_versioning.py --update`")
    assert fingerprint(env_id) == expected, (
        f"the seeded trajectory of {env_id} changed: a change of dynamics needs a new version of the id "
        f"(bump -vN in multispin_env/registration.py or multispin_env/suite.py, say why in CHANGELOG.md) and "
        f"then `python tests/test_versioning.py --update`"
    )


def test_every_later_version_is_explained_in_the_changelog() -> None:
    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    for env_id in registered_ids():
        if gym.spec(env_id).version not in (None, 0):
            assert env_id in changelog, f"{env_id} is a new version: CHANGELOG.md must say what changed and why"


def test_fingerprint_sees_a_change_of_dynamics() -> None:
    """Another setting (another seed) gives another fingerprint; the same one reproduces it."""
    env_id = "MultiSpin-Heterogeneous-v0"
    assert fingerprint(env_id, rounds=20) == fingerprint(env_id, rounds=20)
    assert fingerprint(env_id, rounds=20) != fingerprint(env_id, rounds=20, seed=SEED + 1)
    assert _canonical(np.float64(0.1)) == _canonical(np.float64(0.1) + 1e-17)  # last bits do not count
    assert _canonical(np.float64(0.1)) != _canonical(np.float64(0.1000001))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/test_versioning.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="fingerprint new ids and drop unregistered ones")
    args = parser.parse_args(argv)
    known = stored() if FINGERPRINTS.is_file() else {}
    current = {env_id: fingerprint(env_id) for env_id in registered_ids()}
    changed = sorted(i for i in current if i in known and known[i] != current[i])
    for env_id in changed:
        print(f"{parser.prog}: error: the dynamics of {env_id} changed: bump its version instead", file=sys.stderr)
    added, dropped = sorted(set(current) - set(known)), sorted(set(known) - set(current))
    print(f"{len(current)} ids: {len(added)} new {added}, {len(dropped)} dropped {dropped}, {len(changed)} changed")
    if changed:
        return 1
    if args.update:
        FINGERPRINTS.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"wrote {FINGERPRINTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
