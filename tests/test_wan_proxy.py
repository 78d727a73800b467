"""The WAN proxy carries bytes unchanged and adds (at least) its delay each way."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from scripts.wan_proxy import start_proxy, start_proxy_thread


@pytest.fixture
def echo_server():
    """A loopback echo server; stopped by closing its socket."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(10)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn):
        with conn:
            conn.settimeout(10)
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        assert chunk, "connection closed early"
        buf += chunk
    return bytes(buf)


def test_bytes_pass_through_intact_both_ways(echo_server):
    port, stop = start_proxy(echo_server, delay_ms=5)
    try:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            sender = threading.Thread(target=s.sendall, args=(payload,))
            sender.start()
            got = recv_exactly(s, len(payload))
            sender.join()
        assert got == payload
    finally:
        stop()


def test_half_close_is_forwarded(echo_server):
    port, stop = start_proxy(echo_server, delay_ms=1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"last words")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(1024):
                got += chunk
        assert got == b"last words"
    finally:
        stop()


def test_round_trip_takes_at_least_the_delay_each_way(echo_server):
    delay_ms = 40
    port, stop = start_proxy(echo_server, delay_ms=delay_ms)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"warm")
            recv_exactly(s, 4)
            t0 = time.monotonic()
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            elapsed_ms = (time.monotonic() - t0) * 1000
        assert elapsed_ms >= 2 * delay_ms
    finally:
        stop()


def test_counts_http_requests_going_upstream(echo_server):
    handle = start_proxy_thread(echo_server, delay_ms=0, count_http=True)
    try:
        body = b"x" * 100
        reqs = (b"PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + body
                + b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                + b"DELETE /c HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as s:
            s.sendall(reqs)
            recv_exactly(s, len(reqs))
        assert handle.requests == {"PUT": 1, "GET": 1, "DELETE": 1}
    finally:
        handle.stop()
