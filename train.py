#!/usr/bin/env python
"""Train an SB3 agent on a MultiSpin env with rl-zoo3's flags and output layout (see agents/train.py).

    python train.py --algo ppo --env MultiSpin-Heterogeneous-v0 -n 200000 -P
"""

import sys

from agents.train import main

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))
