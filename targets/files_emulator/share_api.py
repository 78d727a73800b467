"""Service- and share-level operations: list, create, delete and describe shares."""

from __future__ import annotations

from targets.files_emulator import listing
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.headers import entity_headers, metadata_headers
from targets.files_emulator.paths import validate_share_name
from targets.files_emulator.properties import now_ticks
from targets.files_emulator.request import Request, Response
from targets.files_emulator.store import Directory, File, Share, Store


def list_shares(store: Store, request: Request, endpoint: str) -> Response:
    prefix = request.query.get("prefix") or ""
    marker = request.query.get("marker") or ""
    limit = request.int_query("maxresults")
    include = {p.strip().lower() for p in request.query.get("include", "").split(",")}
    with store.lock:
        names = sorted(n for n in store.shares if n.startswith(prefix) and n >= marker)
        next_marker = ""
        if limit is not None and len(names) > limit:
            next_marker, names = names[limit], names[:limit]
        shares = [store.shares[n] for n in names]
        body = listing.share_listing(endpoint, shares, prefix or None, marker or None, limit,
                                     next_marker, "metadata" in include)
    return Response(200, {"Content-Type": "application/xml"}, body)


def handle_share(store: Store, request: Request, name: str) -> Response:
    comp = request.query.get("comp", "")
    method = request.method
    with store.lock:
        if method == "PUT" and comp == "":
            return _create(store, request, name)
        share = store.share(name)
        if method == "DELETE" and comp == "":
            del store.shares[name]
            store.changed()
            return Response(202)
        if method in ("GET", "HEAD") and comp in ("", "metadata"):
            return Response(200, {**entity_headers(share.modified), **metadata_headers(share.metadata),
                                  "x-ms-share-quota": str(share.quota_gib),
                                  "x-ms-access-tier": "TransactionOptimized"})
        if method == "PUT" and comp == "metadata":
            share.metadata = request.metadata()
        elif method == "PUT" and comp == "properties":
            quota = request.int_header("x-ms-share-quota")
            if quota is not None:
                share.quota_gib = quota
        elif method == "GET" and comp == "stats":
            used = _used_bytes(share)
            body = (listing.XML_HEAD + "<ShareStats><ShareUsageBytes>"
                    f"{used}</ShareUsageBytes></ShareStats>").encode()
            return Response(200, {**entity_headers(share.modified), "Content-Type": "application/xml"}, body)
        else:
            raise ServiceError("InvalidQueryParameterValue", 400, f"comp={comp!r} on a share")
        share.modified = now_ticks()
        store.changed()
        return Response(200, entity_headers(share.modified))


def _create(store: Store, request: Request, name: str) -> Response:
    validate_share_name(name)
    if name in store.shares:
        raise ServiceError("ShareAlreadyExists")
    share = Share(name, metadata=request.metadata())
    quota = request.int_header("x-ms-share-quota")
    if quota is not None:
        share.quota_gib = quota
    store.shares[name] = share
    store.changed()
    return Response(201, entity_headers(share.modified))


def _used_bytes(share: Share) -> int:
    total, stack = 0, [share.root]
    while stack:
        for node in stack.pop().children.values():
            if isinstance(node, Directory):
                stack.append(node)
            elif isinstance(node, File):
                total += node.size
    return total
