"""The ceiling: the fastest minimal Blob client we can write, to measure copier against.

    python -m scripts.ceiling TREE --endpoint http://127.0.0.1:PORT/devstoreaccount1 \\
        --container NAME [--prefix P] [--concurrency 64] [--account-key KEY] [--create]

Walks TREE, then sends one Put Blob per file over `--concurrency` keep-alive connections
(asyncio, a hand-written HTTP/1.1 exchange, a container SAS computed once, so no per-request
signing), with no per-file extras: no HEAD, no MD5, no metadata. Prints one JSON line:
{"files", "bytes", "wall_s", "files_per_s", "mb_per_s", "retries", "concurrency"}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

API_VERSION = "2025-11-05"
DEFAULT_ACCOUNT = "devstoreaccount1"
DEFAULT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
INLINE_BODY_MAX = 1 << 20  # smaller bodies go out in one write with their headers


def container_sas(account: str, key: str, container: str, hours: int = 12) -> str:
    """A service SAS (racwdl) on one container, signed as the REST reference describes."""
    now = datetime.now(timezone.utc)
    start = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expiry = (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    perms, version, resource = "racwdl", "2020-12-06", "c"
    fields = [perms, start, expiry, f"/blob/{account}/{container}", "", "", "http,https", version,
              resource, "", "", "", "", "", "", ""]
    sig = base64.b64encode(hmac.new(base64.b64decode(key), "\n".join(fields).encode(), hashlib.sha256).digest())
    return (f"sv={version}&spr=http%2Chttps&st={quote(start)}&se={quote(expiry)}&sr={resource}"
            f"&sp={perms}&sig={quote(sig.decode(), safe='')}")


def create_container(endpoint: str, account: str, key: str, container: str) -> None:
    """Make the container (untimed; a container SAS cannot create one, so this uses the key)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    conn = f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={endpoint};"
    try:
        BlobServiceClient.from_connection_string(conn, api_version=API_VERSION).create_container(container)
    except ResourceExistsError:
        pass


def list_tree(root: str) -> list[tuple[str, str, int]]:
    """(abs path, relpath, size) of every regular file, without following symlinks."""
    out, stack = [], [("", root)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((r, e.path))
                elif e.is_file(follow_symlinks=False):
                    out.append((e.path, r, e.stat(follow_symlinks=False).st_size))
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server closes) of one HTTP/1.1 response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v.strip())
        elif k == "connection" and v.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


class Uploader:
    def __init__(self, host: str, port: int, base_path: str, sas: str, files, concurrency: int):
        self.host, self.port, self.base_path, self.sas = host, port, base_path, sas
        self.files = files
        self.next = 0
        self.concurrency = concurrency
        self.retries = 0
        self.bytes = 0
        self.done = 0

    async def run(self) -> None:
        await asyncio.gather(*(self._connection() for _ in range(self.concurrency)))

    async def _connection(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while self.next < len(self.files):
                path, rel, _ = self.files[self.next]
                self.next += 1
                with open(path, "rb") as f:
                    data = f.read()
                target = f"{self.base_path}/{quote(rel, safe='/~')}?{self.sas}"
                head = (f"PUT {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                        f"x-ms-version: {API_VERSION}\r\nx-ms-blob-type: BlockBlob\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode()
                for attempt in range(8):
                    try:
                        if len(data) < INLINE_BODY_MAX:
                            writer.write(head + data)
                        else:
                            writer.write(head)
                            writer.write(data)
                        await writer.drain()
                        status, close = await read_response(reader)
                    except (ConnectionError, asyncio.IncompleteReadError, OSError):
                        status, close = 0, True
                    if close:
                        writer.close()
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    if status in (200, 201):
                        break
                    if status and status not in RETRY_STATUS:
                        raise RuntimeError(f"PUT {rel!r} answered {status}")
                    self.retries += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))
                else:
                    raise RuntimeError(f"PUT {rel!r} kept failing")
                self.bytes += len(data)
                self.done += 1
        finally:
            writer.close()


def run(tree: str, endpoint: str, container: str, prefix: str = "", concurrency: int = 64,
        account: str = DEFAULT_ACCOUNT, key: str = DEFAULT_KEY, create: bool = False) -> dict:
    url = urlsplit(endpoint.rstrip("/"))
    host, port = url.hostname, url.port or 80
    sas = container_sas(account, key, container)
    base = f"{url.path}/{container}" + (f"/{quote(prefix.strip('/'), safe='/~')}" if prefix else "")
    if create:
        create_container(endpoint.rstrip("/"), account, key, container)
    t0 = time.monotonic()
    files = list_tree(tree)
    up = Uploader(host, port, base, sas, files, max(1, min(concurrency, len(files) or 1)))
    asyncio.run(up.run())
    wall = time.monotonic() - t0
    return {"files": up.done, "bytes": up.bytes, "wall_s": round(wall, 3),
            "files_per_s": round(up.done / wall, 1) if wall else None,
            "mb_per_s": round(up.bytes / wall / 1e6, 2) if wall else None, "retries": up.retries,
            "concurrency": concurrency}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.ceiling", description=__doc__.split("\n")[0])
    p.add_argument("tree")
    p.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT/ACCOUNT")
    p.add_argument("--container", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--account", default=DEFAULT_ACCOUNT)
    p.add_argument("--account-key", default=os.environ.get("CEILING_ACCOUNT_KEY", DEFAULT_KEY))
    p.add_argument("--create", action="store_true", help="create the container first (untimed)")
    args = p.parse_args(argv)
    result = run(args.tree, args.endpoint, args.container, args.prefix, args.concurrency,
                 args.account, args.account_key, args.create)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
