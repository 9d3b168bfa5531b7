"""Returns and speed of DQN and each variant at a fixed budget: a markdown table.

    python scripts/variant_table.py                                   # CartPole-v1, 4 seeds
    python scripts/variant_table.py --env-id Breakout-MinAtar --total-env-steps 150000 \\
        --num-envs 32 --buffer-size 50000 --learning-rate 1e-3 --target-update-interval 200 \\
        --exploration-fraction 0.2 --separate-seeds

Every row is one run of the main job (``baselax.experiment.run``, what
``experiments/anakin_dqn.py`` runs) with the same flags plus the variant's
own; a variant may be another registered agent (``--agent qrdqn``,
``c51``, ``mdqn``, ``rainbow``: Rainbow's entry turns on 3-step returns and
prioritized replay itself). Flags
this script does not know are passed through.
``--separate-seeds`` runs the seeds one after another instead of as one
vmapped program (on CPU, vmapping a conv net over seeds turns its
convolutions into slow grouped ones).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from baselax import experiment

VARIANTS = {
    "DQN": [],
    "Double DQN": ["--double-dqn"],
    "n-step (3)": ["--n-step", "3"],
    "prioritized replay": ["--prioritized"],
    "dueling": ["--dueling"],
    "Huber + clip 10": ["--huber", "--max-grad-norm", "10"],
    "all of them": ["--double-dqn", "--n-step", "3", "--prioritized", "--dueling",
                    "--huber", "--max-grad-norm", "10"],
    "QR-DQN": ["--agent", "qrdqn"],
    "C51": ["--agent", "c51"],
    "M-DQN": ["--agent", "mdqn"],
    "Rainbow": ["--agent", "rainbow"],
}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num-seeds", type=int, default=4)
  parser.add_argument("--separate-seeds", action="store_true")
  parser.add_argument("--only", nargs="*", default=None,
                      help="variant names to run (DQN's row is the speed baseline)")
  args, passthrough = parser.parse_known_args(argv)
  rows = []
  for name, flags in VARIANTS.items():
    if args.only and name not in args.only:
      continue
    seed_runs = ([["--seed", str(i), "--num-seeds", "1"] for i in range(args.num_seeds)]
                 if args.separate_seeds else [["--num-seeds", str(args.num_seeds)]])
    finals, sps = [], []
    for seed_flags in seed_runs:
      with tempfile.TemporaryDirectory() as run_dir:
        out = experiment.run(passthrough + flags + seed_flags +
                             ["--quiet", "--run-dir", run_dir, "--no-tensorboard"],
                             prog="variant_table.py")
      finals.extend(np.atleast_1d(out.eval_return).tolist())
      sps.append(out.sps)
    # Seeds run one after another add their times; vmapped seeds share one.
    total_sps = (len(sps) / np.sum(1.0 / np.array(sps)) if args.separate_seeds
                 else sps[0])
    rows.append((name, np.mean(finals), np.std(finals), np.min(finals), total_sps))
    print(f"{name}: {np.round(finals, 1)} sps {total_sps:,.0f}", flush=True)
  print("\n| variant | final greedy return, mean ± std (min) | env steps/s (all seeds) | vs DQN |")
  print("| --- | --- | --- | --- |")
  base = rows[0][4]
  for name, mean, std, low, speed in rows:
    print(f"| {name} | {mean:.1f} ± {std:.1f} ({low:.1f}) | {speed:,.0f} | {speed / base:.2f}× |")


if __name__ == "__main__":
  main()
