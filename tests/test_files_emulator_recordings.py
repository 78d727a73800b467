"""Conformance: replay the real Azure Files service's recorded answers against our emulator.

Every recording in ../shared/azure-files-recordings/ (see its README) is replayed in order
on a fresh namespace of an emulator started without auth (the recordings carry no
Authorization). Each interaction must give the same status and x-ms-error-code; listings the
same entries, kinds, order, Encoded flags and Prefix; reads the same bytes, Content-Range and
content headers; writes the same Content-MD5. A remaining difference must be listed in
KNOWN_DIFFERENCES with its reason and is reported as xfail.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.files_servers import FilesEmulator, start_files_emulator

# The shared recordings beside the checkout are the reference; tests/data holds a copy of them
# so that a clone on its own (CI) replays them too. A test below keeps the copy identical.
SHARED_RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "azure-files-recordings"
VENDORED_RECORDINGS = Path(__file__).resolve().parent / "data" / "azure-files-recordings"
RECORDINGS = Path(os.environ.get("COPIER_FILES_RECORDINGS")
                  or (SHARED_RECORDINGS if SHARED_RECORDINGS.is_dir() else VENDORED_RECORDINGS))
EXPECTED_INTERACTIONS = 226
RECORDED_HOSTS = {"storagename.file.core.windows.net", "storagename.file.preprod.core.windows.net"}
ACCOUNT = "storagename"
NOT_SENT = {"authorization", "host", "content-length", "connection", "transfer-encoding"}
CONTENT_HEADERS = ["content-type", "content-language", "content-disposition", "content-encoding",
                   "cache-control", "content-md5", "content-range"]
ALWAYS_COMPARED = ["content-range", "content-md5", "x-ms-file-attributes", "x-ms-content-length",
                   "x-ms-type", "x-ms-file-id", "x-ms-file-parent-id"]

# "file#index" -> why the emulator may answer differently there. Keep it empty.
KNOWN_DIFFERENCES: dict[str, str] = {}

_tally = {"interactions": 0, "matched": 0}


@dataclass
class Interaction:
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    response_headers: dict[str, str]  # lower-case names
    response_body: bytes | None


def _header_value(value: object) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _load_json(path: Path) -> list[list[Interaction]]:
    run = []
    for e in json.loads(path.read_text(encoding="utf-8"))["Entries"]:
        headers = {k: _header_value(v) for k, v in e["RequestHeaders"].items()}
        rheaders = {k.lower(): _header_value(v) for k, v in e["ResponseHeaders"].items()}
        run.append(Interaction(e["RequestMethod"], e["RequestUri"], headers,
                               _json_body(e["RequestBody"], headers.get("Content-Type", "")),
                               e["StatusCode"], rheaders,
                               _json_body(e["ResponseBody"], rheaders.get("content-type", ""))))
    return [run]


def _json_body(body: object, content_type: str) -> bytes | None:
    if body is None:
        return None
    text = "".join(body) if isinstance(body, list) else str(body)
    return base64.b64decode(text) if "octet-stream" in content_type else text.encode("utf-8")


def _load_yaml(path: Path) -> list[list[Interaction]]:
    """A cassette may hold two runs of one test (SDK 12.0.0b3, then 12.0.0): split where the
    SDK in the User-Agent changes; each run starts on a fresh namespace, as the tests did."""
    runs: list[list[Interaction]] = []
    previous_agent = None
    for item in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
        req, resp = item["request"], item["response"]
        headers = {k: _header_value(v) for k, v in req["headers"].items()}
        agent = headers.get("User-Agent", "").split(" ")[0]
        if agent != previous_agent:
            runs.append([])
            previous_agent = agent
        body = req["body"]
        rbody = resp["body"]["string"]
        runs[-1].append(Interaction(
            req["method"], req["uri"], headers,
            None if body is None else (body if isinstance(body, bytes) else body.encode("utf-8")),
            resp["status"]["code"], {k.lower(): _header_value(v) for k, v in resp["headers"].items()},
            (rbody if isinstance(rbody, bytes) else rbody.encode("utf-8")) or None))
    return runs


def load_recording(path: Path) -> list[list[Interaction]]:
    return _load_json(path) if path.suffix == ".json" else _load_yaml(path)


def recording_files() -> list[str]:
    if not RECORDINGS.is_dir():
        return []
    return sorted(p.name for p in RECORDINGS.iterdir() if p.suffix in (".json", ".yaml"))


@pytest.fixture(scope="module")
def emulator():
    server = start_files_emulator(auth=False)
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def conformance_summary(request):
    yield
    line = (f"files emulator conformance: {_tally['matched']}/{_tally['interactions']} recorded "
            f"interactions match ({EXPECTED_INTERACTIONS} recorded in all)")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("\n" + line)


# --- talking to the emulator -------------------------------------------------------------

def _target(uri: str) -> str:
    split = urlsplit(uri)
    assert split.netloc in RECORDED_HOSTS, uri
    path = split.path or "/"
    return f"/{ACCOUNT}{path}" + (f"?{split.query}" if split.query else "")


def _send(conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str],
          body: bytes | None) -> tuple[int, dict[str, str], bytes]:
    sent = {k: v for k, v in headers.items() if k.lower() not in NOT_SENT}
    if body is not None or method in ("PUT", "POST"):
        sent["Content-Length"] = str(len(body or b""))
    conn.request(method, target, body=body, headers=sent)
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _fresh_namespace(conn: http.client.HTTPConnection) -> None:
    status, _, body = _send(conn, "GET", f"/{ACCOUNT}/?comp=list", {"x-ms-version": "2021-06-08"}, None)
    assert status == 200
    for name in ET.fromstring(body.decode("utf-8-sig")).iter("Name"):
        status, _, _ = _send(conn, "DELETE", f"/{ACCOUNT}/{name.text}?restype=share", {}, None)
        assert status == 202


def _share_of(uri: str) -> str | None:
    parts = urlsplit(uri).path.strip("/").split("/")
    return parts[0] or None


def _fixture_shares(run: list[Interaction]) -> list[str]:
    """Shares the test's fixture made before the recording began: the first time a share
    appears it is neither created (201) nor reported missing (ShareNotFound)."""
    seen, made = set(), []
    for i in run:
        share = _share_of(i.uri)
        if share is None or share in seen:
            continue
        seen.add(share)
        creates = i.method == "PUT" and urlsplit(i.uri).query == "restype=share" and i.status == 201
        if not creates and i.response_headers.get("x-ms-error-code") != "ShareNotFound":
            made.append(share)
    return made


# --- comparing answers --------------------------------------------------------------------

def _xml(body: bytes) -> ET.Element:
    return ET.fromstring(body.decode("utf-8-sig"))


def _listing_summary(body: bytes) -> dict[str, object]:
    root = _xml(body)
    prefix = root.find("Prefix")
    entries = root.find("Entries")
    shares = root.find("Shares")
    return {
        "ShareName": root.get("ShareName"), "DirectoryPath": root.get("DirectoryPath"),
        "Encoded": root.get("Encoded"),
        "Prefix": None if prefix is None else (prefix.text, prefix.get("Encoded")),
        "DirectoryId": root.find("DirectoryId") is not None,
        "entries": None if entries is None else [
            (e.tag, e.findtext("Name"), e.find("Name").get("Encoded"), e.find("FileId") is not None)
            for e in entries],
        "shares": None if shares is None else [s.findtext("Name") for s in shares],
        "NextMarker": bool(root.findtext("NextMarker")),
    }


def _differences(rec: Interaction, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    out = []
    if status != rec.status:
        out.append(f"status {status} != recorded {rec.status}")
    code = rec.response_headers.get("x-ms-error-code")
    if headers.get("x-ms-error-code") != code:
        out.append(f"x-ms-error-code {headers.get('x-ms-error-code')!r} != recorded {code!r}")
    if out:
        return out
    if status >= 400:
        if rec.method == "HEAD" and body:
            out.append("HEAD error with a body")
        if rec.method != "HEAD" and rec.response_body:
            if _xml(body).findtext("Code") != _xml(rec.response_body).findtext("Code"):
                out.append("error body Code differs")
        for name in ("content-range",):
            if rec.response_headers.get(name) != headers.get(name):
                out.append(f"{name} {headers.get(name)!r} != recorded {rec.response_headers.get(name)!r}")
        return out
    recorded_text = rec.response_body.decode("utf-8-sig", "replace") if rec.response_body else ""
    if "<EnumerationResults" in recorded_text:
        ours, theirs = _listing_summary(body), _listing_summary(rec.response_body or b"")
        for key in theirs:
            if ours[key] != theirs[key]:
                out.append(f"listing {key}: {ours[key]!r} != recorded {theirs[key]!r}")
    elif "<Ranges" in recorded_text:
        if body.decode("utf-8-sig") != recorded_text:
            out.append(f"range list {body!r} != recorded {recorded_text!r}")
    elif rec.method == "GET" and rec.response_body is not None and body != rec.response_body:
        out.append(f"downloaded {len(body)} bytes differ from the recorded {len(rec.response_body)}")
    names = set(ALWAYS_COMPARED) | {n for n in rec.response_headers if n.startswith("x-ms-meta-")}
    if rec.response_headers.get("x-ms-type") == "File":
        names |= set(CONTENT_HEADERS) | {n for n in headers if n.startswith("x-ms-meta-")}
        names.add("content-length")
    for name in sorted(names):
        theirs = rec.response_headers.get(name)
        if (theirs is not None or rec.response_headers.get("x-ms-type") == "File") and headers.get(name) != theirs:
            out.append(f"{name} {headers.get(name)!r} != recorded {theirs!r}")
    return out


# --- the tests ----------------------------------------------------------------------------

def test_recordings_hold_every_interaction():
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS}")
    total = sum(len(run) for name in recording_files() for run in load_recording(RECORDINGS / name))
    assert total == EXPECTED_INTERACTIONS


def test_the_copy_in_tests_data_matches_the_shared_recordings():
    if not SHARED_RECORDINGS.is_dir():
        pytest.skip(f"no shared recordings at {SHARED_RECORDINGS}; the copy in tests/data is used")
    shared = {p.name: p.read_bytes() for p in SHARED_RECORDINGS.iterdir() if p.is_file()}
    vendored = {p.name: p.read_bytes() for p in VENDORED_RECORDINGS.iterdir() if p.is_file()}
    assert vendored == shared


@pytest.mark.parametrize("name", recording_files() or ["<no recordings>"])
def test_emulator_answers_like_the_recording(name: str, emulator: FilesEmulator):
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS}")
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    unexpected, known = [], []
    index = 0
    try:
        for run in load_recording(RECORDINGS / name):
            _fresh_namespace(conn)
            for share in _fixture_shares(run):
                assert _send(conn, "PUT", f"/{ACCOUNT}/{share}?restype=share", {}, None)[0] == 201
            for rec in run:
                status, headers, body = _send(conn, rec.method, _target(rec.uri), rec.headers, rec.body)
                diffs = _differences(rec, status, headers, body)
                key = f"{name}#{index}"
                _tally["interactions"] += 1
                if not diffs:
                    _tally["matched"] += 1
                elif key in KNOWN_DIFFERENCES:
                    known.append(f"{key} ({rec.method} {rec.uri}): {KNOWN_DIFFERENCES[key]}")
                else:
                    unexpected.append(f"{key} {rec.method} {rec.uri}: " + "; ".join(diffs))
                index += 1
    finally:
        conn.close()
    assert not unexpected, "\n".join(unexpected)
    if known:
        pytest.xfail("; ".join(known))
