"""Matryoshka representations: the first k dimensions of a vector are an embedding of their own.

Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022): the training loss is a
weighted sum, over a few prefix sizes k, of the loss on the embeddings cut to their first k
dimensions (re-normalised here, since biolord's losses score unit vectors by dot product). The
trained model is used as usual at full size, or truncated at load time
(``SentenceTransformer(path, truncate_dim=k)``): a dictionary of millions of concept names then
takes 64 or 128 floats per name instead of 384.

The pieces shared by training (``biolord.losses``), evaluation (``truncate_dims=``) and the model
card: the check of configured sizes against the model, the truncation, the card's lines.
No Lightning.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def check_dims(dims: Sequence[int] | None, model_dim: int | None, key: str) -> list[int] | None:
    """``dims`` as a list of ints, or the error that names the bad value, the model's size and the fix.

    dims: prefix sizes, e.g. [384, 256, 128, 64]; None or empty: no truncation.
    model_dim: the encoder's embedding size (None: only the values themselves are checked).
    key: the config key the values came from, for the message.
    """
    if dims is None or len(dims) == 0:
        return None
    if isinstance(dims, (int, str)):
        raise ValueError(f"{key}={dims!r} must be a list of dimensions, e.g. {key}=[{dims}]")
    out = []
    upper = f"1..{model_dim}" if model_dim else ">= 1"
    for k in dims:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (model_dim and k > model_dim):
            raise ValueError(
                f"{key}={list(dims)}: dimension {k!r} is not in {upper}"
                + (f" (the model's embedding dimension is {model_dim})" if model_dim else "")
                + f"; e.g. {key}=[{_example(model_dim)}]"
            )
        out.append(int(k))
    if len(set(out)) != len(out):
        raise ValueError(f"{key}={out} repeats a dimension; list each size once")
    return out


def check_weights(weights: Sequence[float] | None, dims: list[int] | None, key: str) -> list[float] | None:
    """One non-negative weight per dimension (default: 1 each, as sentence-transformers' MatryoshkaLoss)."""
    if dims is None:
        if weights:
            raise ValueError(f"{key}={list(weights)} is set but no matryoshka_dims: set both or neither")
        return None
    if weights is None or len(weights) == 0:
        return [1.0] * len(dims)
    weights = [float(w) for w in weights]
    if len(weights) != len(dims) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"{key}={weights} must hold one weight >= 0 per dimension of {dims} (not all 0), "
            f"e.g. {key}=[{','.join('1' for _ in dims)}]"
        )
    return weights


def truncate(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """(N, d) -> (N, k): the first k dimensions, L2-normalised (cosine = dot product again)."""
    return F.normalize(embeddings[:, :k], p=2, dim=1)  # (N, k)


def card_section(dims: Sequence[int] | None) -> str:
    """The model card's lines for a Matryoshka model (empty when it was trained without)."""
    if not dims:
        return ""
    sizes = ", ".join(str(k) for k in dims)
    smallest = min(dims)
    return (
        "\n## Matryoshka dimensions\n\n"
        f"Trained with a Matryoshka loss (Kusupati et al., 2022) at dimensions {sizes}: the first k "
        "dimensions of each vector are an embedding of their own. Load a truncated model with\n\n"
        f"```python\nmodel = SentenceTransformer('path/to/this/folder', truncate_dim={smallest})\n```\n\n"
        "and score each size with `python -m biolord.evaluate model=<folder> "
        f"truncate_dims=[{sizes}]`.\n"
    )


def tag_card(card: str, dims: Sequence[int] | None) -> str:
    """``card`` with the Hub tags of a Matryoshka model added to its YAML metadata (unchanged without dims).

    Read and written with huggingface_hub's ``ModelCard``, whatever generator wrote the card;
    sentence-transformers' own cards tag the loss the same way.
    """
    if not dims:
        return card
    from huggingface_hub import ModelCard

    parsed = ModelCard(card)
    tags = list(parsed.data.tags or [])
    parsed.data.tags = tags + [t for t in ("matryoshka", "loss:MatryoshkaLoss") if t not in tags]
    return str(parsed)


def _example(model_dim: int | None) -> str:
    if not model_dim:
        return "384,256,128,64"
    return ",".join(str(k) for k in dict.fromkeys([model_dim, max(1, model_dim // 2), max(1, model_dim // 4)]))
