"""The official azure-storage-file-share SDK against our Files emulator, with shared-key auth."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceNotFoundError)
from azure.storage.fileshare import (AccountSasPermissions, ContentSettings, ResourceTypes,
                                     ShareClient, ShareFileClient, ShareServiceClient,
                                     generate_account_sas, generate_share_sas, ShareSasPermissions)

from tests.files_servers import FilesEmulator, start_files_emulator


@pytest.fixture(scope="module")
def emulator():
    server = start_files_emulator()
    yield server
    server.stop()


@pytest.fixture
def share(emulator: FilesEmulator) -> ShareClient:
    service = ShareServiceClient.from_connection_string(emulator.connection_string)
    client = service.get_share_client("s" + uuid.uuid4().hex[:12])
    client.create_share()
    yield client
    client.delete_share()


def _error_code(exc: HttpResponseError) -> str | None:
    return exc.error_code


def test_nested_directory_needs_its_parents(share: ShareClient):
    with pytest.raises(ResourceNotFoundError) as missing:
        share.get_directory_client("a/b/c").create_directory()
    assert _error_code(missing.value) == "ParentNotFound"
    for path in ("a", "a/b", "a/b/c"):
        share.get_directory_client(path).create_directory()
    assert share.get_directory_client("a/b/c").exists()
    with pytest.raises(ResourceExistsError) as exists:
        share.get_directory_client("a/b").create_directory()
    assert _error_code(exists.value) == "ResourceAlreadyExists"


def test_large_upload_is_split_into_ranges_and_reads_back(share: ShareClient):
    payload = os.urandom(9 * 1024 * 1024 + 123)  # the SDK sends ranges of at most 4 MiB
    file = share.get_file_client("big.bin")
    file.upload_file(payload)
    assert file.download_file().readall() == payload
    assert file.download_file(offset=4 * 1024 * 1024 - 10, length=20).readall() == \
        payload[4 * 1024 * 1024 - 10:4 * 1024 * 1024 + 10]
    props = file.get_file_properties()
    assert props.size == len(payload)
    assert props.file_id and props.parent_id == "0"


def test_properties_metadata_and_last_write_time_round_trip(share: ShareClient):
    file = share.get_file_client("doc.txt")
    file.upload_file(b"hello")
    written = datetime(2023, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    file.set_http_headers(ContentSettings(content_type="text/plain", content_language="en"),
                          file_last_write_time="2023-01-02T03:04:05.1234567Z")
    file.set_file_metadata({"origin": "nas1", "mtime": "1672628645"})
    props = file.get_file_properties()
    assert props.content_settings.content_type == "text/plain"
    assert props.content_settings.content_language == "en"
    assert props.metadata == {"origin": "nas1", "mtime": "1672628645"}
    assert props.last_write_time.replace(tzinfo=timezone.utc) == written
    assert props.size == 5
    headers = {}
    file.get_file_properties(raw_response_hook=lambda r: headers.update(r.http_response.headers))
    assert headers["x-ms-file-last-write-time"] == "2023-01-02T03:04:05.1234567Z"


def test_upload_with_explicit_times_and_preserved_write_time(share: ShareClient):
    file = share.get_file_client("timed.bin")
    stamp = datetime(2020, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    file.create_file(3, file_creation_time=stamp, file_last_write_time=stamp)
    file.upload_range(b"abc", offset=0, length=3, file_last_write_mode="preserve")
    props = file.get_file_properties()
    assert props.last_write_time.replace(tzinfo=timezone.utc) == stamp
    assert props.creation_time.replace(tzinfo=timezone.utc) == stamp


def test_rename_replaces_an_existing_file_and_keeps_the_id(share: ShareClient):
    share.get_directory_client("d").create_directory()
    source = share.get_file_client("d/new.part")
    source.upload_file(b"new content")
    target = share.get_file_client("d/final.txt")
    target.upload_file(b"old")
    source_id = source.get_file_properties().file_id
    with pytest.raises(ResourceExistsError):
        source.rename_file("d/final.txt")
    renamed = source.rename_file("d/final.txt", overwrite=True)  # x-ms-file-rename-replace-if-exists
    assert renamed.download_file().readall() == b"new content"
    assert renamed.get_file_properties().file_id == source_id
    assert not source.exists()


def test_listing_delete_and_directory_not_empty(share: ShareClient):
    root = share.get_directory_client("")
    share.get_directory_client("b-dir").create_directory()
    for name in ("c.txt", "a.txt", "b-dir/inner.txt"):
        share.get_file_client(name).upload_file(b"x")
    names = [(item["name"], item["is_directory"]) for item in root.list_directories_and_files()]
    # The service sorts a page by name; the SDK yields a page's directories before its files.
    assert names == [("b-dir", True), ("a.txt", False), ("c.txt", False)]
    paged = list(root.list_directories_and_files(results_per_page=1))
    assert [i["name"] for i in paged] == ["a.txt", "b-dir", "c.txt"]
    with pytest.raises(HttpResponseError) as not_empty:
        share.get_directory_client("b-dir").delete_directory()
    assert _error_code(not_empty.value) == "DirectoryNotEmpty"
    share.get_file_client("b-dir/inner.txt").delete_file()
    share.get_directory_client("b-dir").delete_directory()
    assert [i["name"] for i in root.list_directories_and_files()] == ["a.txt", "c.txt"]
    with pytest.raises(ResourceNotFoundError) as gone:
        share.get_file_client("b-dir/inner.txt").get_file_properties()
    assert _error_code(gone.value) == "ParentNotFound"


def test_empty_file_downloads_through_the_416_then_200_path(share: ShareClient):
    file = share.get_file_client("empty")
    file.create_file(0)
    assert file.download_file().readall() == b""


def test_invalid_names_are_refused(share: ShareClient):
    with pytest.raises(HttpResponseError) as bad:
        share.get_file_client("what?.txt").upload_file(b"x")
    assert bad.value.status_code == 400
    assert _error_code(bad.value) == "InvalidResourceName"


def test_wrong_key_is_refused(emulator: FilesEmulator):
    wrong = emulator.connection_string.replace(emulator.key, "d3Jvbmcga2V5IHdyb25nIGtleQ==")
    service = ShareServiceClient.from_connection_string(wrong)
    with pytest.raises(ClientAuthenticationError) as refused:
        service.get_share_client("anything").create_share()
    assert refused.value.status_code == 403
    assert _error_code(refused.value) == "AuthenticationFailed"


def test_anonymous_requests_are_refused(emulator: FilesEmulator):
    response = requests.get(f"{emulator.endpoint}/anything?restype=share",
                            headers={"x-ms-version": "2021-06-08"}, timeout=10)
    assert response.status_code == 401
    assert response.headers["x-ms-error-code"] == "NoAuthenticationInformation"


def test_sas_tokens_grant_what_they_sign(emulator: FilesEmulator, share: ShareClient):
    share.get_file_client("f.txt").upload_file(b"via sas")
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    read_only = generate_share_sas(emulator.account, share.share_name, emulator.key,
                                   permission=ShareSasPermissions(read=True), expiry=expiry)
    reader = ShareFileClient(emulator.endpoint, share.share_name, "f.txt", credential=read_only)
    assert reader.download_file().readall() == b"via sas"
    with pytest.raises(HttpResponseError) as denied:
        reader.delete_file()
    assert denied.value.status_code == 403
    account_sas = generate_account_sas(emulator.account, emulator.key,
                                       ResourceTypes(service=True, container=True, object=True),
                                       AccountSasPermissions(read=True, write=True, list=True,
                                                             create=True, delete=True), expiry)
    service = ShareServiceClient(emulator.endpoint, credential=account_sas)
    assert share.share_name in [s.name for s in service.list_shares()]
    expired = generate_share_sas(emulator.account, share.share_name, emulator.key,
                                 permission=ShareSasPermissions(read=True),
                                 expiry=datetime.now(timezone.utc) - timedelta(minutes=1))
    with pytest.raises(ClientAuthenticationError):
        ShareFileClient(emulator.endpoint, share.share_name, "f.txt", credential=expired).download_file()


def test_state_survives_a_restart_with_a_data_dir(tmp_path):
    first = start_files_emulator(data_dir=tmp_path)
    try:
        service = ShareServiceClient.from_connection_string(first.connection_string)
        service.create_share("kept").get_file_client("f.txt").upload_file(b"still here")
    finally:
        first.stop()
    second = start_files_emulator(data_dir=tmp_path)
    try:
        service = ShareServiceClient.from_connection_string(second.connection_string)
        file = service.get_share_client("kept").get_file_client("f.txt")
        assert file.download_file().readall() == b"still here"
    finally:
        second.stop()


def test_unicode_and_reserved_url_characters_in_names(share: ShareClient):
    share.get_directory_client("Bücher & Co").create_directory()
    names = ["résumé #1.txt", "100% sure+.txt", "啊齄丂狛狜"]
    for name in names:
        share.get_file_client(f"Bücher & Co/{name}").upload_file(name.encode())
    listed = [i["name"] for i in share.get_directory_client("Bücher & Co").list_directories_and_files()]
    assert sorted(listed) == sorted(names)
    for name in names:
        assert share.get_file_client(f"Bücher & Co/{name}").download_file().readall() == name.encode()
    # Case-insensitive, case-preserving, like SMB: another case finds the same file.
    assert share.get_file_client("bücher & co/RÉSUMÉ #1.txt").exists()
