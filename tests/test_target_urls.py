"""Target URLs: forms, kinds, credentials, and that no secret is ever shown."""

from __future__ import annotations

import base64
import os

import pytest

from copier.errors import AuthenticationFailed, ConfigError, CopierError
from copier.payload import BytesPayload
from targets import open_target, redact
from targets.azure_blob import AzureBlobTarget
from targets.local import LocalTarget
from targets.url import parse_target_url, resolve_credential
from tests.servers import AZURITE_KEY

SAS = "sv=2025-11-05&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig=c2VjcmV0c2lnbmF0dXJl%3D"
KEY_ENV = {"AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY}


def test_local_forms_resolve_to_absolute_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_target_url("/data/out").path == "/data/out"
    assert parse_target_url("file:///data/my%20out").path == "/data/my out"
    assert parse_target_url("rel/dir").path == str(tmp_path / "rel" / "dir")
    assert isinstance(open_target("rel/dir"), LocalTarget)


def test_account_urls_name_kind_container_and_prefix() -> None:
    blob = parse_target_url(f"https://acct1.blob.core.windows.net/backup/night%201/x?{SAS}")
    assert (blob.kind, blob.account, blob.container, blob.prefix) == ("blob", "acct1", "backup", "night 1/x")
    assert blob.endpoint == "https://acct1.blob.core.windows.net" and blob.sas == SAS
    files = parse_target_url("https://acct1.file.core.windows.net/share/base/dir")
    assert (files.kind, files.container, files.prefix, files.sas) == ("files", "share", "base/dir", None)


def test_emulator_urls_default_to_blob_unless_told() -> None:
    url = "http://127.0.0.1:10000/devstoreaccount1/cont/pre"
    loc = parse_target_url(url, {})
    assert (loc.kind, loc.account, loc.container, loc.prefix) == ("blob", "devstoreaccount1", "cont", "pre")
    assert loc.endpoint == "http://127.0.0.1:10000/devstoreaccount1" and loc.emulator
    assert parse_target_url(url, {"COPIER_TARGET_KIND": "files"}).kind == "files"
    assert parse_target_url("files+" + url, {}).kind == "files"
    assert parse_target_url("blob+" + url, {"COPIER_TARGET_KIND": "files"}).kind == "blob"


@pytest.mark.parametrize("url", [
    "", "ftp://host/x", "https://acct.blob.core.windows.net", "https://acct.blob.core.windows.net/Bad_Container",
    "http://127.0.0.1:10000/", "http://127.0.0.1:10000/devstoreaccount1", "s3+http://127.0.0.1:1/a/bbb",
    "files+https://acct.blob.core.windows.net/cont", "https://acct.blob.core.windows.net/cont/a/../b",
    "http://127.0.0.1:notaport/acct/cont", "file://otherhost/x",
])
def test_bad_urls_raise_one_line_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target_url(url, {})
    assert "\n" not in str(info.value)


def test_bad_kind_in_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_target_url("http://127.0.0.1:1/acct/cont", {"COPIER_TARGET_KIND": "s3"})


def test_redact_drops_query_fragment_and_userinfo() -> None:
    assert redact(f"https://acct.blob.core.windows.net/c/p?{SAS}") == "https://acct.blob.core.windows.net/c/p"
    assert redact("https://user:pw@host:8443/c#frag") == "https://host:8443/c"
    assert redact(f"blob+http://127.0.0.1:1/a/c?{SAS}") == "blob+http://127.0.0.1:1/a/c"
    assert redact("/local/path") == "/local/path"


def test_credentials_come_in_order_sas_connection_string_key_identity() -> None:
    url = "http://127.0.0.1:1/devstoreaccount1/cont"
    conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
    assert resolve_credential(parse_target_url(f"{url}?{SAS}", {}), {"AZURE_STORAGE_CONNECTION_STRING": conn}).sas == SAS
    cred = resolve_credential(parse_target_url(url, {}), {"AZURE_STORAGE_CONNECTION_STRING": conn, **KEY_ENV})
    assert cred.key == base64.b64decode(AZURITE_KEY)
    assert resolve_credential(parse_target_url(url, {}), KEY_ENV).key == base64.b64decode(AZURITE_KEY)
    identity = resolve_credential(parse_target_url(url, {}), {})
    assert identity.token is not None and identity.key is None and identity.sas is None
    assert AZURITE_KEY not in repr(cred)


def test_connection_string_for_another_account_is_refused() -> None:
    with pytest.raises(ConfigError):
        resolve_credential(parse_target_url("https://other.blob.core.windows.net/cont", {}),
                           {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=devstoreaccount1;AccountKey={AZURITE_KEY}"})


def _no_secret(text: str) -> None:
    assert "sig=" not in text and "c2VjcmV0" not in text
    assert AZURITE_KEY not in text and "AccountKey" not in text and "Eby8vdM02" not in text


def test_no_secret_in_target_str_url_or_errors(azurite, unique) -> None:
    bad_key = base64.b64encode(b"wrong key" * 8).decode()
    targets = [
        open_target(f"{azurite.blob_endpoint}/{unique}/p?{SAS}", {}),
        open_target(f"{azurite.blob_endpoint}/{unique}/p", {"AZURE_STORAGE_ACCOUNT_KEY": bad_key}),
        open_target(f"{azurite.blob_endpoint}/{unique}/p",
                    {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string.replace(AZURITE_KEY, bad_key)}),
    ]
    for target in targets:
        assert isinstance(target, AzureBlobTarget)
        for text in (str(target), repr(target), target.url):
            _no_secret(text)
        for action in (target.check, lambda: target.put("f", BytesPayload(b"x", 1)), lambda: target.stat("f")):
            with pytest.raises(CopierError) as info:
                action()
            assert isinstance(info.value, AuthenticationFailed), info.value
            _no_secret(str(info.value))
            assert info.value.__cause__ is None  # no SDK exception (and its message) chained on
            assert info.value.__context__ is None or info.value.__suppress_context__
        target.close()
    with pytest.raises(ConfigError) as info:
        open_target(f"https://acct.blob.core.windows.net/Bad?{SAS}", {})
    _no_secret(str(info.value))


def test_unreachable_blob_endpoint_is_transient_or_unavailable(unique) -> None:
    from copier.errors import BackendUnavailable, TransientError
    from tests.servers import free_port

    target = open_target(f"http://127.0.0.1:{free_port()}/devstoreaccount1/{unique}", KEY_ENV)
    with pytest.raises(TransientError):
        target.put("f", BytesPayload(b"x", 1))
    with pytest.raises(BackendUnavailable):
        target.check()
    target.close()


def test_relative_local_target_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = open_target("out")
    target.put("a/b", BytesPayload(b"x", 1_000_000_000, 0o600))
    assert (tmp_path / "out" / "a" / "b").read_bytes() == b"x"
    assert os.stat(tmp_path / "out" / "a" / "b").st_mode & 0o7777 == 0o600


def test_a_sas_in_the_url_reaches_the_blob_fast_path_and_the_sdk(azurite, unique) -> None:
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas("devstoreaccount1", AZURITE_KEY, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, list=True, create=True),
                               datetime.now(timezone.utc) + timedelta(hours=1))
    target = open_target(f"{azurite.blob_endpoint}/{unique}/with sas?{sas}", {})
    assert "sig=" not in target.url
    target.check()
    target.put("a b/c#d", BytesPayload(b"sas", 5))  # fast path
    stat = target.stat("a b/c#d")
    assert stat is not None and (stat.size, stat.mtime_ns) == (3, 5)
    assert [s.name for s in target.list_files("a b")] == ["c#d"]  # SDK
    target.close()
