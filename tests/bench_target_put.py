"""CPU per small upload to Azurite: the Azure SDK vs the Blob target's lean fast path.

    .venv/bin/python -m tests.bench_target_put [--files 2000] [--threads 16] [--size 4096]

Prints client CPU (time.process_time) per upload and per stat, and files/s, for each way.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from copier.payload import BytesPayload
from targets.azure_blob import AzureBlobTarget
from targets.url import parse_target_url, resolve_credential
from tests import servers


def run(target: AzureBlobTarget, files: int, threads: int, size: int) -> dict[str, float]:
    data = os.urandom(size)
    payloads = [BytesPayload(data, 1_700_000_000_000_000_000 + i) for i in range(files)]
    names = [f"d{i % 50}/f{i}.bin" for i in range(files)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: target.put(f"warm/{i}", payloads[0]), range(threads * 2)))  # connections
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(target.put, names, payloads))
        put_cpu, put_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        stats = list(pool.map(target.stat, names))
        stat_cpu, stat_wall = time.process_time() - cpu, time.perf_counter() - wall
    assert all(s is not None and s.size == size for s in stats)
    return {"put_cpu_ms": put_cpu / files * 1e3, "put_files_s": files / put_wall,
            "stat_cpu_ms": stat_cpu / files * 1e3, "stat_s": files / stat_wall}


def run_minimal(endpoint: str, container: str, cred, files: int, threads: int, size: int) -> dict[str, float]:
    """The floor: bare signed Put Blob requests on the lean client, no target logic."""
    import base64
    import hashlib

    from targets.azure_http import LeanBlobClient

    client = LeanBlobClient(endpoint, cred)
    data = os.urandom(size)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()

    def put(i: int) -> None:
        status, _, _ = client.request("PUT", f"/{container}/m/f{i}", {
            "x-ms-blob-type": "BlockBlob", "Content-Length": str(size), "Content-MD5": md5}, data)
        assert status == 201, status

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(-threads * 2, 0)))
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(put, range(files)))
        put_cpu, put_wall = time.process_time() - cpu, time.perf_counter() - wall
    client.close()
    return {"put_cpu_ms": put_cpu / files * 1e3, "put_files_s": files / put_wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    azurite = servers.start_azurite()
    try:
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        for label, fast in (("sdk", False), ("fast path", True), ("sdk", False), ("fast path", True)):
            loc = parse_target_url(f"{azurite.blob_endpoint}/bench{int(fast)}{time.time_ns() % 10**6}/p", env)
            target = AzureBlobTarget(loc, resolve_credential(loc, env), fast_path=fast)
            target.check()
            r = run(target, args.files, args.threads, args.size)
            target.close()
            if fast:
                m = run_minimal(loc.endpoint, loc.container, resolve_credential(loc, env),
                                args.files, args.threads, args.size)
                print(f"  minimal: put {m['put_cpu_ms']:.3f} ms CPU/file, {m['put_files_s']:.0f} files/s")
            print(f"{label:>9}: put {r['put_cpu_ms']:.3f} ms CPU/file, {r['put_files_s']:.0f} files/s; "
                  f"stat {r['stat_cpu_ms']:.3f} ms CPU/call, {r['stat_s']:.0f} calls/s")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
