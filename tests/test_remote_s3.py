"""`dvc push` / `dvc pull` against a real S3-compatible server (SeaweedFS on loopback), as DVC documents them.

One SeaweedFS serves the whole module. An "origin" git+DVC repository tracks a small folder of CSV tables
(`data/raw`, Cyrillic text) and a folder of many small shards (`data/shards`, so a pull lasts long enough
to be interrupted), and pushes both once. Each test then works in its own `git clone` of the origin, as a
teammate would: credentials and endpoint live in `.dvc/config.local` or in environment variables, never
in the committed `.dvc/config`. The failure tests pin the message DVC 3.67 prints and check that neither
the workspace nor the cache is left holding bad bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import SeaweedS3, closed_port, seaweedfs

pytestmark = pytest.mark.slow

DVC = Path(sys.executable).parent / "dvc"
BUCKET = "mpembed"
PREFIX = "dvcstore"
N_SHARDS = 400
CACHE_MODE = 0o444  # DVC marks a cache object read-only once it has verified its hash
OBJECT_NAME = re.compile(r"[0-9a-f]{30}(\.dir)?")  # anything else in the cache is a transfer temporary


# --------------------------------------------------------------------------------------------- helpers


def _base_env(home: Path) -> dict[str, str]:
    """The caller's environment minus anything AWS or DVC could pick up from this machine's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_"))}
    (home / "dvc-global").mkdir(parents=True, exist_ok=True)
    (home / "dvc-global" / "config").write_text("[core]\n    check_update = false\n")
    (home / "dvc-system").mkdir(exist_ok=True)
    env.update({
        "PATH": f"{DVC.parent}{os.pathsep}{env.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    })
    return env


class Repo:
    """A git+DVC working copy driven through the real `dvc` CLI."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def run(self, *args: str, ok: bool = True, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(DVC), *args] if args[0] != "git" else list(args)
        proc = subprocess.run(cmd, cwd=self.path, env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout)
        if ok:
            assert proc.returncode == 0, f"{' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def dvc_fails(self, *args: str, rc: int, env: dict[str, str] | None = None) -> str:
        """Run a DVC command that must fail with exit status `rc`; its combined output."""
        proc = self.run(*args, ok=False, env=env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == rc, f"dvc {' '.join(args)} -> {proc.returncode}, wanted {rc}\n{out}"
        return out

    def set_local_remote(self, endpoint: str, key: str, secret: str, url: str | None = None) -> None:
        """What DVC's docs prescribe for secrets: `dvc remote modify --local` (git-ignored config.local)."""
        if url is not None:
            self.run("remote", "modify", "--local", "storage", "url", url)
        self.run("remote", "modify", "--local", "storage", "endpointurl", endpoint)
        self.run("remote", "modify", "--local", "storage", "access_key_id", key)
        self.run("remote", "modify", "--local", "storage", "secret_access_key", secret)

    @property
    def cache(self) -> Path:
        return self.path / ".dvc" / "cache" / "files" / "md5"

    def wipe(self, *outs: str) -> None:
        """Delete the local cache and the given workspace outputs (a fresh machine, data-wise)."""
        shutil.rmtree(self.path / ".dvc" / "cache", ignore_errors=True)
        for out in outs:
            shutil.rmtree(self.path / out, ignore_errors=True)


def _sha256_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cache_objects(repo: Repo) -> list[Path]:
    if not repo.cache.exists():
        return []
    return [p for p in repo.cache.glob("??/*") if p.is_file() and OBJECT_NAME.fullmatch(p.name)]


def _assert_cache_sound(repo: Repo) -> None:
    """Every object in the cache holds exactly the bytes its name (the md5) promises: no partial objects."""
    for obj in _cache_objects(repo):
        oid = obj.parent.name + obj.name.removesuffix(".dir")
        assert hashlib.md5(obj.read_bytes()).hexdigest() == oid, f"corrupt cache object {obj}"


def _object_path(repo: Repo, data: bytes) -> Path:
    digest = hashlib.md5(data).hexdigest()
    return repo.cache / digest[:2] / digest[2:]


def _tamper(obj: Path, keep_protected: bool) -> None:
    """Overwrite a cache object with other bytes; optionally restore its read-only mode afterwards, which
    is what bit rot or a process running as root leaves behind."""
    mode = obj.stat().st_mode & 0o777
    obj.chmod(0o644)
    obj.write_text("id,title\n1,Подделка\n", encoding="utf-8")
    if keep_protected:
        obj.chmod(mode)


def _write_tables(out: Path) -> None:
    """The raw tables: the project's generated sample when its generator exists, else hand-written ones."""
    try:
        from mpembed.data.sample import generate_sample
    except ImportError:
        generate_sample = None
    if generate_sample is not None:
        generate_sample(out, seed=7, n_products=60)
        return
    out.mkdir(parents=True)
    (out / "products.csv").write_text(
        "nm_id,title,brand,category\n"
        "101,Платье летнее льняное,Ромашка,Платья\n"
        "102,Кроссовки беговые мужские,Быстрый Шаг,Обувь\n"
        "103,\"Чайник электрический, 1,7 л\",Теплодом,Бытовая техника\n", encoding="utf-8")
    (out / "reviews.csv").write_text(
        "nm_id,rating,text\n"
        "101,5,\"Ткань приятная, село идеально\"\n"
        "102,2,Подошва отклеилась через неделю\n", encoding="utf-8")
    (out / "questions.csv").write_text(
        "nm_id,question,answer\n"
        "103,Есть ли автоотключение?,\"Да, при закипании\"\n", encoding="utf-8")
    (out / "brands.csv").write_text("brand,synonym\nРомашка,Romashka\nТеплодом,Teplodom\n", encoding="utf-8")


def _write_shards(out: Path) -> None:
    out.mkdir(parents=True)
    for i in range(N_SHARDS):
        rows = "".join(f"{i * 100 + j},Запрос №{j} к витрине {i},{(i * 31 + j) % 4}\n" for j in range(40))
        (out / f"part-{i:04d}.csv").write_text("query_id,text,relevance\n" + rows, encoding="utf-8")


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as s3:
        s3.create_bucket(BUCKET)
        yield s3


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _base_env(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, server: SeaweedS3, env: dict[str, str]) -> Repo:
    """The author's repository: data added with `dvc add`, remote in `.dvc/config`, pushed once."""
    repo = Repo(tmp_path_factory.mktemp("origin") / "repo", env)
    repo.path.mkdir()
    repo.run("git", "init", "-q", "-b", "main")
    repo.run("init", "-q")
    _write_tables(repo.path / "data" / "raw")
    _write_shards(repo.path / "data" / "shards")
    repo.run("add", "-q", "data/raw", "data/shards")
    repo.run("remote", "add", "-d", "storage", f"s3://{BUCKET}/{PREFIX}")
    repo.set_local_remote(server.endpoint, server.access_key, server.secret_key)
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-qm", "data tracked by dvc, s3 remote")
    out = repo.run("push").stdout
    assert f"{N_SHARDS + len(_sha256_tree(repo.path / 'data/raw')) + 2} files pushed" in out, out
    return repo


@pytest.fixture(scope="module")
def expected(origin: Repo) -> dict[str, dict[str, str]]:
    return {out: _sha256_tree(origin.path / out) for out in ("data/raw", "data/shards")}


@pytest.fixture
def clone(tmp_path: Path, origin: Repo, env: dict[str, str]) -> Repo:
    """A teammate's `git clone`: committed `.dvc/config` only, no cache, no data, no config.local."""
    repo = Repo(tmp_path / "clone", env)
    subprocess.run(["git", "clone", "-q", str(origin.path), str(repo.path)], env=env, check=True)
    assert not (repo.path / ".dvc" / "config.local").exists()
    assert not (repo.path / "data" / "raw").exists()
    return repo


@pytest.fixture
def pulled(clone: Repo, server: SeaweedS3) -> Repo:
    """A clone with working credentials that has pulled `data/raw`."""
    clone.set_local_remote(server.endpoint, server.access_key, server.secret_key)
    clone.run("pull", "data/raw")
    return clone


# ------------------------------------------------------------------------------------------- happy path


def test_committed_config_names_the_remote_but_holds_no_secrets(origin: Repo):
    committed = (origin.path / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/{PREFIX}" in committed and "remote = storage" in committed
    for secret_key in ("endpointurl", "access_key_id", "secret_access_key"):
        assert secret_key not in committed
    local = (origin.path / ".dvc" / "config.local").read_text()
    assert "secret_access_key" in local
    ignored = origin.run("git", "check-ignore", ".dvc/config.local").stdout.strip()
    assert ignored == ".dvc/config.local"


def test_push_wipe_pull_is_byte_identical(origin: Repo, server: SeaweedS3, expected: dict):
    objects = {o.parent.name + o.name for o in _cache_objects(origin)}
    remote = {k.removeprefix(f"{PREFIX}/files/md5/").replace("/", "") for k in server.list_keys(BUCKET, PREFIX)}
    assert remote == objects  # DVC 3 layout: <prefix>/files/md5/<2 hex>/<30 hex>[.dir]

    origin.wipe("data/raw", "data/shards")
    out = origin.run("pull").stdout
    assert f"{len(objects)} files fetched" in out, out
    for name, digests in expected.items():
        assert _sha256_tree(origin.path / name) == digests
    _assert_cache_sound(origin)
    assert "Cache and remote 'storage' are in sync." in origin.run("status", "--cloud").stdout
    assert "Everything is up to date." in origin.run("push").stdout


def test_teammate_clone_pulls_with_credentials_from_environment(clone: Repo, server: SeaweedS3, expected: dict):
    aws = {"AWS_ENDPOINT_URL_S3": server.endpoint, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key}
    clone.run("pull", "data/raw", env=aws)
    assert _sha256_tree(clone.path / "data/raw") == expected["data/raw"]
    assert "Data and pipelines are up to date." in clone.run("status", "data/raw.dvc").stdout


# ------------------------------------------------------------------------------------------ failure modes


def test_unreachable_remote(clone: Repo, server: SeaweedS3, expected: dict):
    """AWS_MAX_ATTEMPTS=1 only shortens botocore's retries: with the defaults DVC prints the same errors
    after ~10-35 s of retrying a refused connection."""
    dead = f"http://127.0.0.1:{closed_port()}"
    once = {"AWS_MAX_ATTEMPTS": "1"}
    clone.set_local_remote(dead, server.access_key, server.secret_key)
    out = clone.dvc_fails("pull", "data/raw", rc=1, env=once)
    assert "ERROR: failed to connect to s3 (mpembed/dvcstore/files/md5)" in out
    assert f'Could not connect to the endpoint URL: "{dead}/mpembed/dvcstore/files/md5"' in out
    assert re.search(r"ERROR: failed to pull data from the cloud - \d+ files failed to download", out), out
    assert not (clone.path / "data" / "raw").exists()
    _assert_cache_sound(clone)

    clone.run("remote", "modify", "--local", "storage", "endpointurl", server.endpoint)
    clone.run("pull", "data/raw")
    assert _sha256_tree(clone.path / "data/raw") == expected["data/raw"]

    clone.run("remote", "modify", "--local", "storage", "endpointurl", dead)
    out = clone.dvc_fails("push", "data/raw", rc=255, env=once)
    assert f'ERROR: unexpected error - Could not connect to the endpoint URL: "{dead}/' in out
    _assert_cache_sound(clone)
    assert _sha256_tree(clone.path / "data/raw") == expected["data/raw"]


def test_wrong_credentials(clone: Repo, server: SeaweedS3, expected: dict):
    clone.set_local_remote(server.endpoint, server.access_key, "not-the-secret")
    out = clone.dvc_fails("pull", "data/raw", rc=1)
    assert "ERROR: failed to connect to s3 (mpembed/dvcstore/files/md5) - Forbidden" in out
    assert "An error occurred (403) when calling the HeadObject operation: Forbidden" in out
    assert "failed to pull data from the cloud" in out
    assert not (clone.path / "data" / "raw").exists()
    assert not _cache_objects(clone)

    clone.run("remote", "modify", "--local", "storage", "secret_access_key", server.secret_key)
    clone.run("pull", "data/raw")
    assert _sha256_tree(clone.path / "data/raw") == expected["data/raw"]

    clone.run("remote", "modify", "--local", "storage", "access_key_id", "unknown-key")
    out = clone.dvc_fails("push", "data/raw", rc=255)
    assert "ERROR: unexpected error - Forbidden: An error occurred (403)" in out
    _assert_cache_sound(clone)


def test_missing_bucket(clone: Repo, server: SeaweedS3, expected: dict):
    """A wrong bucket reads as missing data on a fresh clone (DVC only HEADs the directory listing, a 404),
    and as NoSuchBucket once DVC knows the listing and queries the objects themselves."""
    missing = "s3://no-such-bucket/dvcstore"
    clone.set_local_remote(server.endpoint, server.access_key, server.secret_key, url=missing)
    out = clone.dvc_fails("pull", "data/raw", rc=1)
    assert "WARNING: Some of the cache files do not exist neither locally nor on remote. Missing cache files:" in out
    assert ".dir" in out
    assert "ERROR: failed to pull data from the cloud - Checkout failed for following targets:\ndata/raw\n" \
           "Is your cache up to date?" in out
    assert not (clone.path / "data" / "raw").exists()
    assert not _cache_objects(clone)

    clone.run("remote", "modify", "--local", "storage", "url", f"s3://{BUCKET}/{PREFIX}")
    clone.run("pull", "data/raw")
    no_bucket = ("ERROR: unexpected error - The specified bucket does not exist: An error occurred "
                 "(NoSuchBucket) when calling the ListObjectsV2 operation")
    clone.run("remote", "modify", "--local", "storage", "url", missing)
    assert no_bucket in clone.dvc_fails("push", "data/raw", rc=255)
    buckets = {b["Name"] for b in server.client().list_buckets()["Buckets"]}
    assert "no-such-bucket" not in buckets  # push never creates the bucket
    _assert_cache_sound(clone)
    assert _sha256_tree(clone.path / "data/raw") == expected["data/raw"]

    clone.wipe("data/raw")
    assert no_bucket in clone.dvc_fails("pull", "data/raw", rc=255)
    assert not (clone.path / "data" / "raw").exists()
    assert not _cache_objects(clone)


# SIGKILL only: DVC may finish the transfers already queued before it acts on SIGINT, so a Ctrl-C
# test races with the download and cannot reliably catch the pull half way.
@pytest.mark.parametrize("sig", [signal.SIGKILL], ids=["killed"])
def test_interrupted_pull_leaves_sound_cache_and_resumes(clone: Repo, server: SeaweedS3, expected: dict,
                                                         sig: signal.Signals):
    clone.set_local_remote(server.endpoint, server.access_key, server.secret_key)
    total = N_SHARDS + 1  # files plus the .dir listing
    # One download at a time keeps the pull slow enough to be caught half way even on a busy machine.
    proc = subprocess.Popen([str(DVC), "pull", "-j", "1", "data/shards"], cwd=clone.path, env=clone.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(_cache_objects(clone)) < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"pull ended before it could be interrupted:\n{proc.stdout.read()}"
        os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 252 and "ERROR: interrupted by the user" in out, out
    else:
        assert proc.returncode == -signal.SIGKILL
    had = len(_cache_objects(clone))
    assert 0 < had < total
    _assert_cache_sound(clone)
    assert not (clone.path / "data" / "shards").exists()  # checkout only starts once everything is fetched
    assert "not in cache:       data/shards" in clone.run("status", "data/shards.dvc").stdout

    out = clone.run("pull", "data/shards").stdout
    assert f"{total - had} files fetched and {N_SHARDS} files added" in out, out
    assert _sha256_tree(clone.path / "data/shards") == expected["data/shards"]
    _assert_cache_sound(clone)


def test_corrupted_writable_cache_object_is_dropped_and_fetched_again(pulled: Repo, expected: dict):
    obj = _object_path(pulled, (pulled.path / "data/raw/reviews.csv").read_bytes())
    assert obj.stat().st_mode & 0o777 == CACHE_MODE
    _tamper(obj, keep_protected=False)

    status = pulled.run("status", "data/raw.dvc").stdout
    assert "not in cache:       data/raw" in status, status
    assert not obj.exists()  # the hash check deleted the bad object
    assert "1 file fetched" in pulled.run("fetch", "data/raw").stdout
    _assert_cache_sound(pulled)
    assert obj.stat().st_mode & 0o777 == CACHE_MODE
    assert _sha256_tree(pulled.path / "data/raw") == expected["data/raw"]


def test_corrupted_protected_cache_object_needs_unprotect_and_fetch(pulled: Repo, expected: dict):
    obj = _object_path(pulled, (pulled.path / "data/raw/reviews.csv").read_bytes())
    _tamper(obj, keep_protected=True)
    # a read-only object counts as verified: fetch does not re-hash it, checkout copies its bytes
    assert "Everything is up to date." in pulled.run("fetch", "data/raw").stdout
    shutil.rmtree(pulled.path / "data" / "raw")
    pulled.run("checkout", "data/raw")
    assert _sha256_tree(pulled.path / "data/raw") != expected["data/raw"]

    # the documented recovery: make objects writable so DVC re-hashes them, drop the bad copy, pull
    for p in _cache_objects(pulled):
        p.chmod(0o644)
    shutil.rmtree(pulled.path / "data" / "raw")
    assert "1 file fetched" in pulled.run("pull", "data/raw").stdout
    assert _sha256_tree(pulled.path / "data/raw") == expected["data/raw"]
    _assert_cache_sound(pulled)


def test_modified_workspace_file_needs_pull_force(pulled: Repo, expected: dict):
    target = pulled.path / "data" / "raw" / "reviews.csv"
    target.write_text("nm_id,rating,text\n101,1,испорчено\n", encoding="utf-8")
    assert "modified:           data/raw" in pulled.run("status", "data/raw.dvc").stdout
    out = pulled.dvc_fails("pull", "data/raw", rc=1)
    assert "Can't remove the following unsaved files without confirmation. Use `--force` to force." in out
    assert str(target) in out
    assert "1 file modified" in pulled.run("pull", "--force", "data/raw").stdout
    assert _sha256_tree(pulled.path / "data/raw") == expected["data/raw"]
    _assert_cache_sound(pulled)
