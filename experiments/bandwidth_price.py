"""The bandwidth-price mechanism for selfish users: the equilibrium of each price and the users' total goodput.

    python -m experiments.bandwidth_price --prices 0 1 2 5 10 20 40 --env-kwargs fading:False

Selfish users of :mod:`multispin_env.multiagent` (``reward_mode="selfish"``) each maximise their own tokens within
the horizon less their payments, p w_k per second while they draft (``bandwidth_price`` p, tokens per unit of bid
per second; the band is split in proportion to the drafting users' bids w_k). Over a horizon of many rounds of a
static system, user k's payoff per second is u_k = E[n_k] / T - p w_k [L_k > 0] (eq. (5w) with the weight on user
k alone; T the round latency, eq. (3)). This script finds, for each price, the equilibrium that best-response
dynamics reach from the price-free outcome that selfish PPO learned (every user L_max, full bid): users in turn
move to their best (L_k, w_k) on a grid (L in 0..L_max, w in ``--bids`` steps of (0, 1]) given the others, until
nobody moves. It prints each equilibrium's lengths, bids, total goodput (eq. (5)), its share of het-opt's goodput
(the price of anarchy), and the price with the highest total goodput.

The system is the first round's of ``--env`` with the given settings and ``--seed`` (:func:`oracle_params`); with
``fading:False`` and i.i.d. acceptance (IIDStatic) it is the system of every round.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import multispin_env  # noqa: F401  (registers the ids)
from agents.cli import OneLineParser
from agents.rllib import parse_env_kwargs
from baselines.information import oracle_params
from baselines.solvers import score_allocation, solve_heterogeneous
from multispin_env.registration import DEFAULT_ENV_ID


def shares_of(core: Any, lengths: np.ndarray, bids: np.ndarray) -> np.ndarray:
    """The band split the env plays for lengths L_k and bids w_k (its own decoder, docs/model.md section 8.1):
    b_k = w_k [L_k > 0] / sum_j w_j [L_j > 0].

    :param core: the env's :class:`multispin_env.core.MultiSpinCore`
    :param lengths: L_k (tokens), shape (K,)
    :param bids: w_k in [0, 1], shape (K,)
    """
    joint = np.concatenate([2.0 * lengths / core.max_draft - 1.0, 2.0 * np.asarray(bids) - 1.0])
    return core.decode(joint[None].astype(np.float64))[1][0]


def equilibrium(
    core: Any, systems: list[Any], price: float, bids: np.ndarray, max_draft: int, max_sweeps: int = 100
) -> dict[str, Any]:
    """Best-response dynamics from (L_max, w = 1) for every user; ``systems[k]`` scores user k's own goodput.

    :param core: the env's core (its band split, :func:`shares_of`)
    :param systems: per user k, the round's RoundParams with weight 1 on user k only
    :param price: p, tokens per unit of bid per second
    :param bids: the bid grid, values in (0, 1]
    :param max_draft: L_max (tokens)
    :param max_sweeps: give up (``converged`` False) after this many rounds of best responses
    """
    k = len(systems)
    lengths = np.full(k, max_draft, dtype=np.int64)
    own_bids = np.ones(k)

    def payoff(user: int, length: int, bid: float) -> float:
        trial_l, trial_w = lengths.copy(), own_bids.copy()
        trial_l[user], trial_w[user] = length, bid
        allocation = score_allocation(systems[user], trial_l, shares_of(core, trial_l, trial_w))
        assert allocation.objective is not None
        return float(allocation.objective) - price * bid * (length > 0)

    converged = False
    for _ in range(max_sweeps):
        moved = False
        for user in range(k):
            current = payoff(user, int(lengths[user]), float(own_bids[user]))
            best = max(
                (
                    (payoff(user, length, float(bid)), length, float(bid))
                    for length in range(max_draft + 1)
                    for bid in bids
                ),
                key=lambda item: item[0],
            )
            if best[0] > current + 1e-9:
                lengths[user], own_bids[user] = best[1], best[2] if best[1] > 0 else own_bids[user]
                moved = True
        if not moved:
            converged = True
            break
    return {"lengths": lengths, "bids": own_bids, "converged": converged}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="bandwidth_price", description=__doc__.splitlines()[0])
    p.add_argument("--prices", type=float, nargs="+", default=[0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0])
    p.add_argument("--env", default=DEFAULT_ENV_ID)
    p.add_argument("--env-kwargs", nargs="*", default=["fading:False"], metavar="KEY:VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bids", type=int, default=20, help="bid grid: w in 1/N, 2/N, ..., 1")
    p.add_argument("-o", "--output", default=None, help="write bandwidth_price.json here")
    args = p.parse_args(argv)
    if any(not np.isfinite(price) or price < 0 for price in args.prices):
        p.error(f"--prices must be finite numbers >= 0, got {args.prices}")

    env = gym.make(args.env, **parse_env_kwargs(args.env_kwargs))
    env.reset(seed=args.seed)
    num_users = int(env.get_wrapper_attr("num_users"))
    max_draft = int(env.get_wrapper_attr("max_draft"))
    core = env.get_wrapper_attr("core")
    params = oracle_params(env)
    systems = [oracle_params(env, weights=np.eye(num_users)[k]) for k in range(num_users)]
    best = solve_heterogeneous(params)
    bids = np.arange(1, args.bids + 1) / args.bids
    print(
        f"{args.env} {args.env_kwargs} seed {args.seed}: het-opt {best.goodput:.2f} tokens/s, lengths "
        f"{best.draft_lengths.tolist()}"
    )
    print(
        "| price p (tokens per unit bid per s) | lengths L_k | bids w_k | total goodput (tokens/s) | share of het-opt "
        "| payments (tokens/s) | converged |"
    )
    print("|---:|---|---|---:|---:|---:|:-:|")
    rows = []
    for price in args.prices:
        eq = equilibrium(core, systems, price, bids, max_draft)
        shares = shares_of(core, eq["lengths"], eq["bids"])
        allocation = score_allocation(params, eq["lengths"], shares)
        paid = float(price * np.sum(eq["bids"] * (eq["lengths"] > 0)))
        row = {
            "price": price,
            "lengths": eq["lengths"].tolist(),
            "bids": [round(float(w), 3) for w in eq["bids"]],
            "goodput": allocation.goodput,
            "share_of_het_opt": allocation.goodput / best.goodput,
            "payments_per_s": paid,
            "converged": eq["converged"],
        }
        rows.append(row)
        print(
            f"| {price:g} | {row['lengths']} | {row['bids']} | {allocation.goodput:.2f} | "
            f"{100 * row['share_of_het_opt']:.1f}% | {paid:.2f} | {'yes' if eq['converged'] else 'no'} |"
        )
    top = max(rows, key=lambda row: row["goodput"])
    print(
        f"highest total goodput: price {top['price']:g} ({top['goodput']:.2f} tokens/s, "
        f"{100 * top['share_of_het_opt']:.1f}% of het-opt)"
    )
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bandwidth_price.json").write_text(
            json.dumps(
                {
                    "env": args.env,
                    "env_kwargs": args.env_kwargs,
                    "seed": args.seed,
                    "het_opt_goodput": best.goodput,
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
