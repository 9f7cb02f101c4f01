#!/usr/bin/env python
"""Train an RL agent on a MultiSpin env: rl-zoo3's training command with our extension points (agents/train.py).

python train.py --algo ppo --env MultiSpin-Heterogeneous-v0 -n 200000 -P
"""

import sys

from agents.train import main

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))
