"""Shared fixtures: a tiny BERT built from a config, a tokenizer and an OBO file made here."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

WORDS = (
    "disease disorder syndrome abnormal abnormality of the a an and is in with by to heart liver "
    "kidney brain eye skin bone muscle blood lung copper iron metabolism inherited rare chronic "
    "acute inflammation infection tumor cancer pain fever seizure defect deficiency growth "
    "characterized caused deposition excessive loss part organ system cell tissue type one two "
    "three four five six seven eight nine ten alpha beta gamma delta omega wilson huntington "
    "neurological hepatic renal cardiac ocular dermal skeletal muscular vascular pulmonary"
).split()


def write_tiny_model(folder: Path, hidden: int = 32, layers: int = 2, words=WORDS) -> Path:
    """A 2-layer BERT with a word-level vocabulary of ``words``, saved as a Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words)), *list("0123456789-.,:'")]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 takes the vocabulary as `vocab` (and ignores `vocab_file`); 4.x wants the file
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    if len(tokenizer) < len(vocab):
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    assert tokenizer.tokenize(" ".join(words[:2])) == list(words[:2]), "tiny tokenizer lost its vocabulary"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def _tiny_encoder(tiny_model_dir):
    from biolord.encoder import Encoder

    return Encoder.load(str(tiny_model_dir), max_seq_length=32)


@pytest.fixture
def tiny_encoder(_tiny_encoder):
    """Loaded once per test run, deep-copied per test (tests may train it)."""
    return copy.deepcopy(_tiny_encoder)


def write_obo(path: Path, n_terms: int = 40) -> Path:
    """A small OBO ontology: a root, n_terms children with definitions, synonyms, part_of, one obsolete."""
    organs = ["heart", "liver", "kidney", "brain", "eye", "skin", "bone", "muscle", "blood", "lung"]
    kinds = ["disease", "disorder", "syndrome", "defect"]
    numbers = "one two three four five six seven eight nine ten".split()
    lines = [
        "format-version: 1.2",
        "ontology: tst",
        "",
        "[Term]",
        "id: TST:0000000",
        "name: disease",
        'def: "A disorder of one organ system." []',
        "",
    ]
    for i in range(1, n_terms + 1):
        organ, kind, num = organs[i % 10], kinds[i % 4], numbers[(i // 4) % 10]
        lines += [
            "[Term]",
            f"id: TST:{i:07d}",
            f"name: {organ} {kind} {num}",
            f'def: "A rare {kind} of the {organ} characterized by {num} {organs[(i + 3) % 10]} defect." []',
            f'synonym: "{num} {organ} {kind}" EXACT []',
            f'synonym: "{organ} abnormality {num}" RELATED []',
            "is_a: TST:0000000 ! disease",
        ]
        if i > 4:
            lines.append(f"relationship: part_of TST:{i - 4:07d} ! parent")
        lines.append("")
    lines += ["[Term]", "id: TST:9999999", "name: obsolete thing", "is_obsolete: true", "", "[Typedef]", "id: part_of", "name: part of", ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def tiny_obo(tmp_path) -> Path:
    return write_obo(tmp_path / "tiny.obo")


def compose(overrides: list[str], config_name: str = "train"):
    """An entry point's config as it would see it (train.py by default), via Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


@pytest.fixture
def tiny_train_cfg(tmp_path, tiny_model_dir, tiny_obo):
    """A train config on the tiny model and the tiny OBO file, writing under tmp_path."""

    def make(*extra: str):
        return compose(
            [
                "model=hub",
                f"model.name_or_path={tiny_model_dir}",
                "model.max_seq_length=32",
                f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]",
                "data.batch_size_per_device=8",
                "data.val_fraction=0.2",
                "data.val_max_concepts=20",
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                "logger=csv",
                "trainer.max_steps=3",
                "trainer.precision=32-true",  # exact comparisons; the bf16 default has its own test
                "trainer.log_every_n_steps=1",
                "trainer.enable_progress_bar=false",
                "eval.every_n_steps=2",
                "checkpoint.every_n_steps=2",
                *extra,
            ]
        )

    return make


def free_port() -> int:
    """A free TCP port on the loopback interface, for a gloo process group."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world: int, port: int) -> None:
    """Join a CPU (gloo) process group on the loopback interface: the 2-process tests' workers.

    faulthandler: a worker that aborts in C++ (SIGABRT) prints its Python stack to stderr,
    which pytest shows with the failure; without it the spawn error names only the signal.
    """
    import faulthandler

    import torch.distributed as dist

    faulthandler.enable()

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)


def close_gloo() -> None:
    """Leave the process group in step with the other rank.

    Why: a rank that destroys the group (and exits) while its peer is still finishing a
    collective, or while a DDP reducer still holds the group, can abort the peer in gloo's
    C++ threads ("terminate called without an active exception", SIGABRT in CI once). The
    caller drops its DDP wrappers first; the barrier then makes both ranks finish every
    collective before either tears down.
    """
    import gc

    import torch.distributed as dist

    gc.collect()  # DDP reducers the caller deleted release the group here, not at exit
    dist.barrier()
    dist.destroy_process_group()
