"""Quality at equal wall-clock: biolord's pipeline vs plain sentence-transformers on the same data.

(b) biolord: ``biolord.pipeline.run`` (``python pipeline.py``: contrastive -> self-distillation ->
    soup) with the recipe's own settings, or with ``--single`` the default single run
    (``python train.py phase=contrastive``). Its training seconds T are measured: every stage,
    model loading, data and export included; evaluation excluded.
(a) sentence-transformers: ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss``
    (scale 20) with its documented settings (batch 64, lr 2e-5, 10 % warm-up, linear decay,
    ``NO_DUPLICATES`` batches, max length 64, its default precision fp32 on CPU) on the same base
    model and the *same training rows* (the train split of biolord's data config, every row as an
    (anchor, positive) pair, unweighted), for the same T seconds: its step count is calibrated on a
    throwaway run (so that its schedule completes) and a callback stops it at T regardless.

Both models and the base model are scored by ``biolord.evaluation`` on every benchmark; one
side-by-side table is printed and written as JSON lines + a PNG bar chart, ending with the line
``wins: K/N benchmarks vs sentence-transformers at equal wall-clock (budget S s)``.

    python bench/quality.py                                  # the default pipeline
    python bench/quality.py --single                         # the default single run
    python bench/quality.py --c-extra optim.lr=3e-5          # a recipe variant (contrastive stage)
    python bench/quality.py --st-from outputs/quality/<earlier run>   # reuse its ST model if it had >= T
    python bench/quality.py --st-only --budget 600                    # only (a), for later --st-from reuse
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (bench/throughput.py: require_accelerate)

CALIBRATION_STEPS = 20
BENCHMARKS = ["biosses", "stsb", "mayosrs", "umnsrs_sim", "ncbi_disease", "heldout"]


def listed(items: list[str]) -> str:
    return "[" + ",".join(json.dumps(i) for i in items) + "]"


# ---- (b) biolord -------------------------------------------------------------------------------
def run_biolord(args, out: Path):
    """Train (b); returns (its model folder, its training seconds, the data config, the base model)."""
    from biolord.pipeline import compose_entry

    if args.single:
        cfg = compose_entry("train", ["phase=contrastive", *args.c_extra, f"paths.output_dir={out}"])
        done = out / "stage.json"
        if done.exists():
            seconds = json.loads(done.read_text())["seconds"]
        else:
            from biolord.train import run

            start = time.perf_counter()
            run(cfg)
            seconds = round(time.perf_counter() - start, 1)
            done.write_text(json.dumps({"seconds": seconds}))
        return out / "model", seconds, cfg.data, str(cfg.model.name_or_path)
    defaults = compose_entry("pipeline", [])
    overrides = [
        f"contrastive={listed([*defaults.contrastive, *args.c_extra])}",
        f"self_distill={listed([*defaults.self_distill, *args.s_extra])}",
        f"average={listed([*defaults.average, *args.a_extra])}",
        *args.set,
        "evaluate.benchmarks=[]",  # evaluated below, side by side with (a)
        f"output_dir={out}",
    ]
    cfg = compose_entry("pipeline", overrides)
    from biolord.pipeline import run

    summary = run(cfg)
    final = "average" if cfg.get("soup") else ("self_distill" if cfg.get("self_distill") is not None else "contrastive")
    c_cfg = compose_entry("train", list(cfg.contrastive) + [f"paths.output_dir={out / 'contrastive'}"])
    return Path(summary["models"][final]) / "model", summary["train_seconds"], c_cfg.data, str(c_cfg.model.name_or_path)


# ---- (a) sentence-transformers -----------------------------------------------------------------
def training_pairs(data_cfg, tokenizer, max_length: int) -> tuple[list[str], list[str]]:
    """The train split of biolord's data config as (anchor, positive) strings: the same rows biolord trains on."""
    from biolord.data.datamodule import PairDataModule

    data = PairDataModule(data_cfg, tokenizer, max_length)
    data.setup("fit")
    rows = data.table.dataset.select(data.train_indices.tolist())
    return list(rows["name"]), list(rows["text"])


def st_training_args(args, out: Path, max_steps: int):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=args.st_batch_size,
        max_steps=max_steps,
        learning_rate=args.st_lr,
        warmup_ratio=0.1,
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        disable_tqdm=True,
        bf16=args.st_precision == "bf16",
        use_cpu=True,
        seed=args.seed,
    )


def st_fit(args, base: str, dataset, out: Path, max_steps: int, stop_after: float | None, start: float):
    """One SentenceTransformerTrainer run; returns (model, steps done, seconds per step after 2 warm-up steps)."""
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from biolord import model_source

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            ends.append(time.perf_counter())
            if stop_after is not None and ends[-1] - start >= stop_after:
                control.should_training_stop = True  # the budget is spent: stop where it is

    model = SentenceTransformer(model_source.resolve(base), device="cpu")
    model.max_seq_length = args.max_seq_length
    trainer = SentenceTransformerTrainer(
        model=model, args=st_training_args(args, out, max_steps), train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model, scale=20.0), callbacks=[Clock()],
    )
    trainer.train()
    per_step = (ends[-1] - ends[1]) / (len(ends) - 2) if len(ends) > 2 else float("nan")
    return model, len(ends), per_step


def run_sentence_transformers(args, base: str, data_cfg, budget: float, out: Path) -> dict:
    """Train (a) for ``budget`` seconds; returns its record (model folder, seconds, steps, pairs)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from biolord import model_source

    done = out / "st.json"
    if done.exists():
        return json.loads(done.read_text())
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_source.resolve(base))
    names, texts = training_pairs(data_cfg, tokenizer, args.max_seq_length)
    dataset = Dataset.from_dict({"anchor": names, "positive": texts})
    torch.manual_seed(args.seed)
    data_seconds = time.perf_counter() - start  # counted: (b) pays for its data too
    # calibration (the instrument, not counted): seconds per step, and the set-up cost (model
    # loading, trainer) that the real run pays again
    # 20 steps: with 8, the lengths of a few NO_DUPLICATES batches decided the estimate (one run measured
    # 4.16 s/step against 3.1 s in its real run, and its schedule ended at 534 of its 734 s)
    calib_start = time.perf_counter()
    _, _, per_step = st_fit(args, base, dataset, out / "calibration", CALIBRATION_STEPS, None, calib_start)
    setup = (time.perf_counter() - calib_start) - CALIBRATION_STEPS * per_step
    shutil.rmtree(out / "calibration", ignore_errors=True)
    max_steps = max(1, int((budget - data_seconds - setup) / per_step))
    clock = time.perf_counter() - data_seconds  # (a)'s clock: data + model + training + save
    model, steps, _ = st_fit(args, base, dataset, out, max_steps, budget, clock)
    model.save(str(out / "model"))
    seconds = round(time.perf_counter() - clock, 1)
    record = {"model_dir": str(out / "model"), "seconds": seconds, "budget": round(budget, 1),
              "planned_steps": max_steps, "steps": steps, "pairs": steps * args.st_batch_size,
              "calibrated_s_per_step": round(per_step, 3), "rows": len(names), "precision": args.st_precision}
    done.write_text(json.dumps(record, indent=2))
    return record


# ---- evaluation and the table ------------------------------------------------------------------
def print_short_budget_note(st: dict, budget: float) -> None:
    """Say so when (a)'s calibrated schedule ended well before its budget: then it had less time than (b)."""
    if st["seconds"] < 0.9 * budget:
        print(f"note: sentence-transformers trained {st['seconds']:.0f} of its {budget:.0f} s ({st['steps']} steps planned "
              f"from a calibrated {st['calibrated_s_per_step']} s/step): it had less time than biolord")


def evaluate(models: dict[str, str], data_cfg, out: Path, benchmarks: list[str], max_seq_length: int = 128) -> list[dict]:
    """Every model scored by one evaluator: the same benchmarks and the same max length (a model's own
    setting would differ between rows: the base model's folder says 256, the trained ones 64)."""
    from biolord.pipeline import compose_entry
    from biolord.evaluation.runner import run

    cfg = compose_entry("evaluate", [f"paths.output_dir={out}"])
    cfg.models = list(models.values())
    cfg.benchmarks = benchmarks
    cfg.data = data_cfg
    cfg.output_dir = str(out)
    cfg.update_model_card = False
    cfg.max_seq_length = max_seq_length
    (out / "results.jsonl").unlink(missing_ok=True)
    results = run(cfg)
    labels = {v: k for k, v in models.items()}
    for r in results:
        r["label"] = labels[r["model"]]
    return results


def wins(results: list[dict], ours: str = "biolord", theirs: str = "sentence-transformers") -> tuple[int, int, list[str]]:
    """Benchmarks where ``ours`` is at least as good as ``theirs`` on the primary metric."""
    by = {(r["label"], r["benchmark"]): r["metrics"][r["primary"]] for r in results}
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    lines, won = [], 0
    for b in benches:
        diff = by[(ours, b)] - by[(theirs, b)]
        won += diff >= 0
        lines.append(f"{b} {diff:+.2f}")
    return won, len(benches), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="output folder (default outputs/quality/<time>)")
    parser.add_argument("--single", action="store_true", help="(b) = the default single run, not the pipeline")
    parser.add_argument("--c-extra", action="append", default=[], help="override for the contrastive stage (repeatable)")
    parser.add_argument("--s-extra", action="append", default=[], help="override for the self-distillation stage")
    parser.add_argument("--a-extra", action="append", default=[], help="override for the averaging stage")
    parser.add_argument("--set", action="append", default=[], help="override of conf/pipeline.yaml, e.g. soup=[contrastive]")
    parser.add_argument("--st-only", action="store_true", help="train and score only (a), for --budget seconds")
    parser.add_argument("--budget", type=float, default=None, help="with --st-only: (a)'s seconds")
    parser.add_argument("--st-from", default=None, help="reuse the ST model of an earlier bench run if its budget >= T")
    parser.add_argument("--st-batch-size", type=int, default=64)
    parser.add_argument("--st-lr", type=float, default=2e-5)
    parser.add_argument("--st-precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--benchmarks", nargs="+", default=BENCHMARKS)
    parser.add_argument("--eval-max-seq-length", type=int, default=128, help="one max length for every model scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    throughput.require_accelerate(parser)  # before any training: (b) would otherwise run its whole budget, then (a) fail

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("transformers", "sentence_transformers", "datasets", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    out = Path(args.out or ROOT / "outputs" / "quality" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if args.st_only:
        if not args.budget:
            parser.error("--st-only needs --budget SECONDS")
        from biolord.pipeline import compose_entry

        c_cfg = compose_entry("train", [*args.c_extra, f"paths.output_dir={out / 'biolord'}"])
        budget, data_cfg, base = float(args.budget), c_cfg.data, str(c_cfg.model.name_or_path)
        st = run_sentence_transformers(args, base, data_cfg, budget, out / "sentence-transformers")
        print(f"(a) sentence-transformers: {st['seconds']:.0f} s, {st['steps']} steps ({st['pairs']} pairs)")
        print_short_budget_note(st, budget)
        results = evaluate({"base": base, "sentence-transformers": st["model_dir"]}, data_cfg,
                           out / "evaluation", list(args.benchmarks), args.eval_max_seq_length)
        from biolord.pipeline import primary_table

        (out / "quality.md").write_text(primary_table(results) + "\n")
        print("\n" + primary_table(results))
        return
    b_model, budget, data_cfg, base = run_biolord(args, out / "biolord")
    print(f"(b) biolord {'single run' if args.single else 'pipeline'}: {budget:.0f} s of training -> the budget")
    st = None
    if args.st_from:
        earlier = Path(args.st_from) / "sentence-transformers" / "st.json"
        record = json.loads(earlier.read_text()) if earlier.exists() else None
        if record and record["budget"] >= budget * 0.97:
            st = record
            print(f"(a) reusing {earlier}: its budget {record['budget']:.0f} s >= {budget:.0f} s x 0.97")
        else:
            why = "missing" if not record else f"its budget {record['budget']:.0f} s is below {budget:.0f} s x 0.97"
            print(f"(a) not reusing {earlier}: {why}")
    st = st or run_sentence_transformers(args, base, data_cfg, budget, out / "sentence-transformers")
    print(f"(a) sentence-transformers: {st['seconds']:.0f} s, {st['steps']} steps of {args.st_batch_size} "
          f"({st['pairs']} pairs, {st['precision']})")

    models = {"base": base, "sentence-transformers": st["model_dir"], "biolord": str(b_model)}
    results = evaluate(models, data_cfg, out / "evaluation", list(args.benchmarks), args.eval_max_seq_length)
    from biolord.evaluation import report
    from biolord.pipeline import primary_table

    table = primary_table(results)
    won, n, diffs = wins(results)
    summary = {"budget_s": round(budget, 1), "st": st, "biolord_model": str(b_model), "single": args.single,
               "c_extra": args.c_extra, "s_extra": args.s_extra, "a_extra": args.a_extra, "set": args.set,
               "wins": won, "n": n, "diffs": diffs, "load_at_end": os.getloadavg()}
    with open(out / "quality.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps({k: v for k, v in r.items() if k != "details"}) + "\n")
        f.write(json.dumps({"summary": summary}) + "\n")
    for r in results:
        r["model"] = r["label"]  # the chart's legend
    report.bar_chart(results, out / "quality.png")
    (out / "quality.md").write_text(table + "\n")
    print("\n" + table)
    print(f"\nbiolord - sentence-transformers: {', '.join(diffs)}")
    print(f"time: biolord {budget:.0f} s, sentence-transformers {st['seconds']:.0f} s; "
          f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print_short_budget_note(st, budget)
    print(f"{out}/quality.jsonl, quality.md, quality.png")
    print(f"wins: {won}/{n} benchmarks vs sentence-transformers at equal wall-clock (budget {budget:.0f} s)")


if __name__ == "__main__":
    main()
