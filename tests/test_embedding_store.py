"""One on-disk store of text vectors for evaluation and teacher vectors: keyed by fingerprint and text."""

import pytest
import torch

from biolord.embedding_store import EmbeddingStore
from biolord.encoder_spec import fingerprint
from biolord.evaluation.embedder import TextEmbedder
from biolord.teacher_cache import TeacherCache

try:
    from tests.evaluation_tiny import CountingEncoder, tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401
except ImportError:
    from evaluation_tiny import CountingEncoder, tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401

NAMES = ["wilson disease", "copper toxicosis", "heart failure", "breast cancer"]


def test_vectors_an_evaluation_stored_are_what_a_teacher_cache_of_the_same_model_reads(tmp_path, tiny_eval_encoder):
    """The same shards under the same key: a TeacherCache with no teacher at all serves the
    dictionary vectors an evaluation stored, as the model returned them (not re-normalised)."""
    counting = CountingEncoder(tiny_eval_encoder)
    TextEmbedder(counting, batch_size=8, cache_dir=tmp_path).embed_cached(NAMES)
    assert counting.texts == len(NAMES)
    teacher_side = TeacherCache(tmp_path, fingerprint=fingerprint(tiny_eval_encoder))
    assert len(teacher_side) == len(NAMES)
    stored = teacher_side.lookup(NAMES[::-1])  # (4, d)
    assert torch.allclose(stored, tiny_eval_encoder.encode(NAMES[::-1]).float(), atol=1e-6)
    assert teacher_side.stats()["hits"] == 4 and teacher_side.stats()["teacher_calls"] == 0


def test_a_grown_dictionary_encodes_only_its_new_names_and_vectors_are_unit_length(tmp_path, tiny_eval_encoder):
    TextEmbedder(CountingEncoder(tiny_eval_encoder), batch_size=8, cache_dir=tmp_path).embed_cached(NAMES[:3])
    counting = CountingEncoder(tiny_eval_encoder)
    embedder = TextEmbedder(counting, batch_size=8, cache_dir=tmp_path)
    vectors = embedder.embed_cached(NAMES + NAMES[:1])  # (5, d)
    assert counting.texts == 1  # only "breast cancer" is new
    assert torch.allclose(vectors.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.equal(vectors[0], vectors[4])
    plain = TextEmbedder(CountingEncoder(tiny_eval_encoder), batch_size=8).embed(NAMES)
    assert torch.allclose(vectors[:4], plain, atol=1e-5)  # the store changes where vectors come from, not what they are


def test_retrained_weights_get_their_own_vectors(tmp_path, tiny_eval_encoder):
    import copy

    TextEmbedder(tiny_eval_encoder, cache_dir=tmp_path).embed_cached(NAMES)
    retrained = copy.deepcopy(tiny_eval_encoder)
    with torch.no_grad():
        next(retrained.transformer.parameters()).add_(0.5)
    counting = CountingEncoder(retrained)
    TextEmbedder(counting, cache_dir=tmp_path).embed_cached(NAMES)
    assert counting.texts == len(NAMES)  # never served the old model's vectors
    assert len(list(tmp_path.iterdir())) == 2  # one folder per fingerprint


def test_store_refuses_a_wrong_count_or_dimension_and_names_missing_texts(tmp_path):
    store = EmbeddingStore(tmp_path, "fp")
    store.add(["a", "b", "a"], torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]))
    assert len(store) == 2 and torch.equal(store.get(["a"]), torch.tensor([[1.0, 0.0]]))  # first row of a repeated text
    with pytest.raises(ValueError, match="returned 1 vectors for 2 texts"):
        store.add(["c", "d"], torch.zeros(1, 2))
    with pytest.raises(ValueError, match="dimension 3 for the store .*holds dimension 2"):
        store.add(["c"], torch.zeros(1, 3))
    with pytest.raises(KeyError, match="not in the embedding store .*'zzz'"):
        store.get(["a", "zzz"])
    assert EmbeddingStore(tmp_path, "fp").get(["b", "a"]).tolist() == [[0.0, 1.0], [1.0, 0.0]]  # read back from disk


def test_one_fingerprint_keys_every_store_and_sees_projection_prefix_and_tokenizer(tmp_path, tiny_eval_model_dir):
    """encoder_spec.fingerprint is the key of the evaluation store and of the teacher cache: the same model
    loaded twice (folder, folder, checkpoint) has one key; a model that differs only in its projection,
    only in its prefix, or only in its tokenizer's normaliser has another, and is encoded anew."""
    import copy

    from tokenizers import normalizers

    from biolord.encoder import Encoder
    from biolord.encoder_spec import load_model
    from biolord.student import Student
    from biolord.teacher_cache import FrozenTeacher
    from tests.test_checkpoint_spec import write_described_checkpoint

    torch.manual_seed(0)
    student = Student(Encoder.load(str(tiny_eval_model_dir), max_seq_length=32), prefix="query: ", teacher_dim=24,
                      projection=True)
    folder = student.export(tmp_path / "student", card="card")
    ckpt = write_described_checkpoint(student, tmp_path / "student.ckpt")
    loads = [load_model(str(folder)), load_model(str(folder)), load_model(str(ckpt))]
    keys = {TextEmbedder(m).fingerprint for m in loads} | {FrozenTeacher(m).fingerprint() for m in loads}
    assert keys == {fingerprint(student)}  # one model, one key, evaluation and teacher side alike

    projected = copy.deepcopy(loads[0])
    with torch.no_grad():
        projected.projection.weight[0, 0] += 1e-3  # only the projection differs
    prefixed = copy.deepcopy(loads[0])
    prefixed.prefix = "passage: "  # only the prefix differs
    cased = copy.deepcopy(loads[0])
    cased.encoder.tokenizer.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    others = [projected, prefixed, cased]
    assert len({fingerprint(m) for m in others} | keys) == 4
    # through the store: a model that differs never reads another's vectors
    TextEmbedder(loads[0], cache_dir=tmp_path / "store").embed_cached(NAMES)
    for model in others:
        counting = CountingEncoder(model)
        TextEmbedder(counting, cache_dir=tmp_path / "store").embed_cached(NAMES)
        assert counting.texts == len(NAMES)
    again = CountingEncoder(loads[2])  # the checkpoint's copy reads what the folder's stored
    TextEmbedder(again, cache_dir=tmp_path / "store").embed_cached(NAMES)
    assert again.texts == 0
    # a teacher prefix on top of a plain encoder is the same input as a student's own prefix: the same key
    plain = Student(copy.deepcopy(student.encoder), prefix="query: ")
    plain.encoder.normalize = True
    assert FrozenTeacher(plain.encoder, prefix="query: ").fingerprint() == fingerprint(plain)
    assert FrozenTeacher(plain.encoder).fingerprint() != fingerprint(plain)


def test_deferred_writes_one_shard_per_flush_every_and_flush_writes_the_rest(tmp_path):
    """A training loop adds a few texts per step: with flush_every the store writes one shard per that
    many texts (not a file and an fsync per step), and flush() the remainder; every vector reads back."""
    store = EmbeddingStore(tmp_path, "fp", flush_every=5)
    for i in range(3):  # 3 x 2 texts: one shard once 6 >= 5 are pending
        store.add([f"t{2 * i}", f"t{2 * i + 1}"], torch.full((2, 4), float(i)))
    shards = lambda: sorted((tmp_path / "fp").glob("*.safetensors"))  # noqa: E731
    assert len(shards()) == 1
    store.add(["t6"], torch.full((1, 4), 3.0))
    assert len(shards()) == 1 and store.get(["t6"]).tolist() == [[3.0] * 4]  # in memory before it is written
    store.flush()
    assert len(shards()) == 2 and store.flush() is None  # nothing left pending
    again = EmbeddingStore(tmp_path, "fp")
    assert len(again) == 7 and again.get(["t6", "t0", "t5"])[:, 0].tolist() == [3.0, 0.0, 2.0]


def test_store_grows_past_its_first_capacity_and_keeps_every_row(tmp_path):
    store = EmbeddingStore(tmp_path, "fp", flush_every=10_000)
    vectors = torch.randn(3000, 8)
    for start in range(0, 3000, 700):  # 5 adds; the matrix doubles from 1024 to 4096
        store.add([f"x{i}" for i in range(start, min(start + 700, 3000))], vectors[start : start + 700])
    texts = [f"x{i}" for i in (2999, 0, 1500, 1024, 1023)]
    assert torch.equal(store.get(texts), vectors[[2999, 0, 1500, 1024, 1023]])
