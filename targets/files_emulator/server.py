"""The HTTP front: parse, authenticate, route to the operation, write the answer."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

from targets.files_emulator import auth, listing, properties as props
from targets.files_emulator.directory_api import handle_directory
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.file_api import handle_file
from targets.files_emulator.paths import parse_request_path
from targets.files_emulator.request import Request, Response
from targets.files_emulator.share_api import handle_share, list_shares
from targets.files_emulator.store import Store

log = logging.getLogger("files_emulator")

# Azurite's well-known development account (public, documented by Microsoft).
DEFAULT_ACCOUNT = "devstoreaccount1"
DEFAULT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
MAX_BODY = 4 * 1024 * 1024 + 1024


@dataclass
class EmulatorConfig:
    account: str = DEFAULT_ACCOUNT
    key: str = DEFAULT_KEY
    auth: bool = True


def route(store: Store, config: EmulatorConfig, request: Request) -> Response:
    path = parse_request_path(request.raw_path, request.flag("x-ms-allow-trailing-dot"))
    if config.auth:
        if path.account != config.account:
            raise ServiceError("AuthenticationFailed", detail="unknown account")
        level = "service" if path.share is None else ("share" if not path.parts else "object")
        auth.check(auth.AuthRequest(request.method, request.raw_path, request.query_pairs,
                                    request.headers, path.share, "/".join(path.parts), level),
                   auth.Credentials(config.account, base64.b64decode(config.key)))
    endpoint = f"http://{request.host}/{quote(path.account)}/"
    restype = request.query.get("restype", "")
    if path.share is None:
        if request.method == "GET" and request.query.get("comp") == "list":
            return list_shares(store, request, endpoint)
        raise ServiceError("InvalidQueryParameterValue", 400, "unsupported service operation")
    if not path.parts and restype == "share":
        return handle_share(store, request, path.share)
    with store.lock:
        share = store.share(path.share)
        if restype == "directory":
            return handle_directory(store, share, path.parts, request, endpoint)
        if restype:
            raise ServiceError("InvalidQueryParameterValue", 400, f"restype={restype!r}")
        return handle_file(store, share, path.parts, request)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms a response).
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the body stays unread
            raise ServiceError("RequestBodyTooLarge")
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            raw_path, _, raw_query = self.path.partition("?")
            request = Request(self.command, raw_path, raw_query, self.headers, self._body(),
                              self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])
            response = route(self.server.store, self.server.config, request)
            version = request.version
        except ServiceError as err:
            version = self.headers.get("x-ms-version") or ""
            response = self._error(err, request_id)
        except Exception:  # a bug here must still answer, like the service's 500
            log.exception("internal error on %s %s", self.command, self.path)
            response = self._error(ServiceError("InternalError", 500), request_id)
        self._send(response, request_id, version)

    def _error(self, err: ServiceError, request_id: str) -> Response:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        headers = {"x-ms-error-code": err.code, **err.headers}
        if self.command == "HEAD":
            return Response(err.status, headers)
        headers["Content-Type"] = "application/xml"
        return Response(err.status, headers, listing.error_body(err.code, err.message, request_id, stamp))

    def _send(self, response: Response, request_id: str, version: str) -> None:
        self.log_request(response.status)
        self.send_response_only(response.status)  # send_response() would add its own Server/Date
        headers = {"Server": "Windows-Azure-File/1.0 Microsoft-HTTPAPI/2.0",
                   "x-ms-request-id": request_id, "Date": props.http_date(), **response.headers}
        if version:
            headers["x-ms-version"] = version
        client_id = self.headers.get("x-ms-client-request-id")
        if client_id:
            headers["x-ms-client-request-id"] = client_id
        headers.setdefault("Content-Length", str(len(response.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _handle


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: Store, config: EmulatorConfig) -> None:
        super().__init__(address, Handler)
        self.store = store
        self.config = config

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="files-emulator", daemon=True)
        thread.start()
        return thread
