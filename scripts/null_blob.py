"""A null Azure Blob endpoint: answers like the service, keeps no bodies.

    python -m scripts.null_blob [--port 0]        # prints its port on the first line

Path-style URLs as Azurite's: http://127.0.0.1:PORT/ACCOUNT/CONTAINER/BLOB. Understands create
container (201, or 409 ContainerAlreadyExists), container properties, list containers, Put Blob,
Put Block, Put Block List, HEAD / properties of a blob (from what it remembers: name, size,
Content-MD5, content type, metadata), Set Blob Metadata, List Blobs (flat or with a
delimiter) and Delete Blob. Bodies are read and discarded; no authentication is checked.
Reading a blob's bytes is not supported (there are none). It exists so that a client's own
capacity can be measured without the storage emulator's single core in the way.

An asyncio Protocol with a hand-written HTTP/1.1 keep-alive parser: several thousand requests
per second on one core. `start_null_blob()` runs it in a child process (its own interpreter,
so it does not share a GIL with the client being measured).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

API_VERSION = "2025-11-05"
_BLOCK_RE = re.compile(rb"<(Latest|Committed|Uncommitted)>([^<]*)</\1>")


@dataclass
class Blob:
    size: int
    etag: str
    last_modified: str
    md5: str | None = None
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Container:
    etag: str
    last_modified: str
    blobs: dict[str, Blob] = field(default_factory=dict)
    blocks: dict[str, dict[str, int]] = field(default_factory=dict)  # blob -> block id -> size


class Store:
    def __init__(self) -> None:
        self.containers: dict[tuple[str, str], Container] = {}
        self._etags = itertools.count(1)
        self.requests = 0

    def etag(self) -> str:
        return f'"0x8D{next(self._etags):013X}"'


_date_cache = [0.0, ""]


def http_date() -> str:
    now = time.time()
    if int(now) != int(_date_cache[0]):
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


class NullBlobProtocol(asyncio.Protocol):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.head: tuple | None = None  # (method, target, headers) while its body arrives
        self.body = bytearray()
        self.need = 0
        self.keep_body = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > 1 << 20:
                        self.transport.close()
                    return
                lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[:end + 4]
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    self._send(411, "LengthRequired", {}, close=True)
                    return
                self.need = int(headers.get("content-length", "0") or 0)
                self.keep_body = "comp=blocklist" in target
                self.body = bytearray()
                self.head = (method, target, headers)
                if headers.get("expect", "").lower() == "100-continue":
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            take = min(self.need, len(self.buf))
            if take:
                if self.keep_body:
                    self.body += self.buf[:take]
                del self.buf[:take]
                self.need -= take
            if self.need:
                return
            method, target, headers = self.head
            self.head = None
            self.store.requests += 1
            self.handle(method, target, headers, bytes(self.body), self._size_of_body(headers))
            if self.transport.is_closing():
                return

    @staticmethod
    def _size_of_body(headers: dict) -> int:
        return int(headers.get("content-length", "0") or 0)

    # ------------------------------------------------------------------ responses

    def _send(self, status: int, reason: str, headers: dict, body: bytes = b"", close: bool = False,
              content_length: int | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {reason}",
                 f"Date: {http_date()}",
                 "Server: null-blob",
                 "x-ms-request-id: 00000000-0000-0000-0000-000000000000",
                 f"x-ms-version: {API_VERSION}",
                 f"Content-Length: {len(body) if content_length is None else content_length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if close:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body)
        if close:
            self.transport.close()

    def _error(self, status: int, code: str, method: str) -> None:
        body = b"" if method == "HEAD" else (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{code}</Message></Error>").encode()
        self._send(status, code, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body)

    def _xml(self, text: str) -> None:
        self._send(200, "OK", {"Content-Type": "application/xml"},
                   ('<?xml version="1.0" encoding="utf-8"?>' + text).encode("utf-8"))

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, target: str, headers: dict, body: bytes, size: int) -> None:
        split = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        parts = split.path.lstrip("/").split("/", 2)
        account = parts[0] if parts else ""
        container = parts[1] if len(parts) > 1 else ""
        blob = unquote(parts[2]) if len(parts) > 2 else ""
        comp, restype = q.get("comp", ""), q.get("restype", "")
        if not container:
            if comp == "list":
                return self._list_containers(account, q)
            return self._send(200, "OK", {})  # service properties and the like
        key = (account, container)
        c = self.store.containers.get(key)
        if not blob:
            if restype == "container" and comp == "list" or comp == "list":
                if c is None:
                    return self._error(404, "ContainerNotFound", method)
                return self._list_blobs(c, q)
            if method == "PUT" and restype == "container" and not comp:
                if c is not None:
                    return self._error(409, "ContainerAlreadyExists", method)
                self.store.containers[key] = Container(self.store.etag(), http_date())
                c = self.store.containers[key]
                return self._send(201, "Created", {"ETag": c.etag, "Last-Modified": c.last_modified})
            if method == "DELETE" and restype == "container":
                if self.store.containers.pop(key, None) is None:
                    return self._error(404, "ContainerNotFound", method)
                return self._send(202, "Accepted", {})
            if c is None:
                return self._error(404, "ContainerNotFound", method)
            return self._send(200, "OK", {"ETag": c.etag, "Last-Modified": c.last_modified,
                                          "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available",
                                          "x-ms-has-immutability-policy": "false",
                                          "x-ms-has-legal-hold": "false"})
        if c is None:
            return self._error(404, "ContainerNotFound", method)
        if method == "PUT":
            if comp == "block":
                c.blocks.setdefault(blob, {})[q.get("blockid", "")] = size
                return self._send(201, "Created", {"x-ms-request-server-encrypted": "true"})
            if comp == "blocklist":
                pending = c.blocks.pop(blob, {})
                ids = [m.group(2).decode() for m in _BLOCK_RE.finditer(body)]
                total = sum(pending.get(i, 0) for i in ids)
                return self._put(c, blob, headers, total, md5_header="x-ms-blob-content-md5")
            if comp in ("metadata", "properties"):
                b = c.blobs.get(blob)
                if b is None:
                    return self._error(404, "BlobNotFound", method)
                if comp == "metadata":
                    b.metadata = _metadata(headers)
                else:
                    b.md5 = headers.get("x-ms-blob-content-md5", b.md5)
                    b.content_type = headers.get("x-ms-blob-content-type", b.content_type)
                b.etag = self.store.etag()
                return self._send(200, "OK", {"ETag": b.etag, "Last-Modified": b.last_modified})
            if comp:
                return self._send(200, "OK", {})
            return self._put(c, blob, headers, size, md5_header=None)
        if method in ("HEAD", "GET"):
            b = c.blobs.get(blob)
            if b is None:
                return self._error(404, "BlobNotFound", method)
            if method == "GET" and comp in ("", None) and not restype:
                return self._error(400, "NullEndpointKeepsNoBytes", method)
            h = {"ETag": b.etag, "Last-Modified": b.last_modified, "x-ms-blob-type": "BlockBlob",
                 "Content-Type": b.content_type, "x-ms-creation-time": b.last_modified,
                 "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available",
                 "x-ms-server-encrypted": "true", "Accept-Ranges": "bytes",
                 "x-ms-access-tier": "Hot", "x-ms-access-tier-inferred": "true"}
            if b.md5:
                h["Content-MD5"] = b.md5
            for k, v in b.metadata.items():
                h[f"x-ms-meta-{k}"] = v
            return self._send(200, "OK", h, content_length=b.size)
        if method == "DELETE":
            if c.blobs.pop(blob, None) is None:
                return self._error(404, "BlobNotFound", method)
            return self._send(202, "Accepted", {})
        return self._error(400, "UnsupportedHttpVerb", method)

    def _put(self, c: Container, blob: str, headers: dict, size: int, md5_header: str | None) -> None:
        md5 = headers.get("x-ms-blob-content-md5") or (None if md5_header else headers.get("content-md5"))
        b = Blob(size=size, etag=self.store.etag(), last_modified=http_date(), md5=md5,
                 content_type=headers.get("x-ms-blob-content-type", "application/octet-stream"),
                 metadata=_metadata(headers))
        c.blobs[blob] = b
        h = {"ETag": b.etag, "Last-Modified": b.last_modified, "x-ms-request-server-encrypted": "true"}
        if md5:
            h["Content-MD5"] = md5
        self._send(201, "Created", h)

    def _list_containers(self, account: str, q: dict) -> None:
        prefix = q.get("prefix", "")
        items = "".join(
            f"<Container><Name>{escape(name)}</Name><Properties><Last-Modified>{c.last_modified}"
            f"</Last-Modified><Etag>{c.etag}</Etag></Properties></Container>"
            for (acct, name), c in sorted(self.store.containers.items())
            if acct == account and name.startswith(prefix))
        self._xml(f'<EnumerationResults ServiceEndpoint="/{account}"><Prefix>{escape(prefix)}</Prefix>'
                  f"<Containers>{items}</Containers><NextMarker /></EnumerationResults>")

    def _list_blobs(self, c: Container, q: dict) -> None:
        prefix, delim, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        limit = int(q.get("maxresults", "5000") or 5000)
        names = sorted(n for n in c.blobs if n.startswith(prefix) and n > marker)
        out, prefixes, next_marker = [], [], ""
        seen_prefixes: set[str] = set()
        for n in names:
            if len(out) + len(prefixes) >= limit:
                next_marker = out[-1][0] if out else prefixes[-1]
                break
            if delim:
                cut = n.find(delim, len(prefix))
                if cut >= 0:
                    p = n[:cut + len(delim)]
                    if p not in seen_prefixes:
                        seen_prefixes.add(p)
                        prefixes.append(p)
                    continue
            out.append((n, c.blobs[n]))
        blobs = "".join(_blob_xml(n, b) for n, b in out)
        blobs += "".join(f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in prefixes)
        self._xml(f"<EnumerationResults><Prefix>{escape(prefix)}</Prefix><MaxResults>{limit}</MaxResults>"
                  f"<Delimiter>{escape(delim)}</Delimiter><Blobs>{blobs}</Blobs>"
                  f"<NextMarker>{escape(next_marker)}</NextMarker></EnumerationResults>")


def _metadata(headers: dict) -> dict[str, str]:
    return {k[len("x-ms-meta-"):]: v for k, v in headers.items() if k.startswith("x-ms-meta-")}


def _blob_xml(name: str, b: Blob) -> str:
    md5 = f"<Content-MD5>{b.md5}</Content-MD5>" if b.md5 else "<Content-MD5 />"
    meta = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in b.metadata.items())
    return (f"<Blob><Name>{escape(name)}</Name><Properties><Creation-Time>{b.last_modified}</Creation-Time>"
            f"<Last-Modified>{b.last_modified}</Last-Modified><Etag>{b.etag}</Etag>"
            f"<Content-Length>{b.size}</Content-Length><Content-Type>{escape(b.content_type)}</Content-Type>"
            f"{md5}<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>"
            f"<AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus>"
            f"<LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>"
            f"<Metadata>{meta}</Metadata></Blob>")


async def serve(host: str = "127.0.0.1", port: int = 0, announce=None) -> None:
    loop = asyncio.get_running_loop()
    store = Store()
    server = await loop.create_server(lambda: NullBlobProtocol(store), host, port, backlog=2048)
    bound = server.sockets[0].getsockname()[1]
    if announce:
        announce(bound)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


@dataclass
class NullBlobServer:
    port: int
    proc: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/devstoreaccount1"

    def connection_string(self, key: str) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
                f"BlobEndpoint={self.endpoint};")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_null_blob() -> NullBlobServer:
    """Start the null endpoint in a child process on a free loopback port."""
    proc = subprocess.Popen([sys.executable, "-m", "scripts.null_blob", "--port", "0"],
                            stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"null blob endpoint did not start: {line!r}")
    return NullBlobServer(int(line), proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.null_blob", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    try:
        import uvloop  # optional: faster event loop when installed
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, announce=lambda port: print(port, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
