"""A TCP proxy that puts a WAN's latency in front of a loopback server.

    python -m scripts.wan_proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --delay-ms 25

Every chunk read from one side is written to the other side `delay_ms` later, in order, per
connection and per direction. Chunks wait in a queue with their release time, so many are in
flight at once: latency is added, throughput is not serialised. The first line printed is
the listening port.

From Python: `port, stop = start_proxy(upstream_port, 25)` runs it in a thread.
With `count_http=True` the proxy also counts HTTP/1.1 requests going upstream (by method),
which is how the benchmark counts Azure queue operations.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys
import threading

CHUNK = 64 * 1024
MAX_QUEUED_CHUNKS = 1024  # per direction: back-pressure beyond ~64 MiB in flight


class RequestCounter:
    """Counts HTTP/1.1 requests in one client->server byte stream (Content-Length bodies)."""

    def __init__(self, totals: collections.Counter, lock: threading.Lock):
        self._buf = bytearray()
        self._skip = 0
        self._lost = False
        self._totals = totals
        self._lock = lock

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        if self._skip:
            take = min(self._skip, len(data))
            self._skip -= take
            data = data[take:]
        self._buf += data
        while not self._skip and not self._lost:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 1 << 20:
                    self._lost = True
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[:end + 4]
            lines = head.split("\r\n")
            method = lines[0].split(" ", 1)[0]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self._lost = True  # cannot follow chunked bodies; stop counting this stream
            with self._lock:
                self._totals[method] += 1
            take = min(length, len(self._buf))
            del self._buf[:take]
            self._skip = length - take


class WanProxy:
    def __init__(self, upstream: tuple[str, int], delay_ms: float, count_http: bool = False):
        self.upstream = upstream
        self.delay_s = delay_ms / 1000.0
        self.count_http = count_http
        self.requests: collections.Counter = collections.Counter()
        self.connections = 0
        self._lock = threading.Lock()
        self._server: asyncio.AbstractServer | None = None

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, backlog=1024)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            await self._relay(c_reader, c_writer)
        except asyncio.CancelledError:
            c_writer.close()  # the proxy is closing; end quietly

    async def _relay(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            c_writer.close()
            return
        counter = RequestCounter(self.requests, self._lock) if self.count_http else None
        try:
            await asyncio.gather(
                self._pipe(c_reader, u_writer, counter),
                self._pipe(u_reader, c_writer, None),
                return_exceptions=True,
            )
        finally:
            for w in (c_writer, u_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    counter: RequestCounter | None) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(MAX_QUEUED_CHUNKS)

        async def release() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        releaser = asyncio.create_task(release())
        try:
            while True:
                data = await reader.read(CHUNK)
                if counter is not None and data:
                    counter.feed(data)
                await queue.put((loop.time() + self.delay_s, data or None))
                if not data:
                    break
            await releaser
        except (ConnectionError, OSError):
            releaser.cancel()
            writer.close()
        except asyncio.CancelledError:
            releaser.cancel()
            await asyncio.gather(releaser, return_exceptions=True)
            raise


class ProxyHandle:
    """A proxy running on its own event loop in a daemon thread."""

    def __init__(self, proxy: WanProxy, port: int, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.proxy, self.port, self._loop, self._thread = proxy, port, loop, thread

    @property
    def requests(self) -> collections.Counter:
        return self.proxy.requests

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def start_proxy_thread(upstream_port: int, delay_ms: float, count_http: bool = False,
                       upstream_host: str = "127.0.0.1") -> ProxyHandle:
    proxy = WanProxy((upstream_host, upstream_port), delay_ms, count_http)
    loop = asyncio.new_event_loop()
    ready: dict = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["port"] = loop.run_until_complete(proxy.start())
        except BaseException as e:  # reported to the caller below
            ready["error"] = e
            started.set()
            return
        started.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)  # connections still open at stop: end them quietly
        for t in pending:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name=f"wan-proxy-{upstream_port}", daemon=True)
    thread.start()
    if not started.wait(10) or "error" in ready:
        raise RuntimeError(f"proxy did not start: {ready.get('error')}")
    return ProxyHandle(proxy, ready["port"], loop, thread)


def start_proxy(upstream_port: int, delay_ms: float, count_http: bool = False):
    """Run a proxy to 127.0.0.1:upstream_port in a thread; returns (port, stop)."""
    handle = start_proxy_thread(upstream_port, delay_ms, count_http)
    return handle.port, handle.stop


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(listen: tuple[str, int], upstream: tuple[str, int], delay_ms: float) -> None:
    proxy = WanProxy(upstream, delay_ms)
    port = await proxy.start(*listen)
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.wan_proxy", description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--upstream", required=True)
    p.add_argument("--delay-ms", type=float, default=25.0)
    args = p.parse_args(argv)
    asyncio.run(_serve(_hostport(args.listen), _hostport(args.upstream), args.delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
