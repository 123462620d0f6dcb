"""The routes of docs/API.md ("Endpoints"). They check who may do what and call the
ledger application; every rule of the Convention lives in ``domain/``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.deps import (
    READER_ROLES,
    CurrentPrincipal,
    IdempotencyKey,
    Ledger,
    authorization_parties,
    can_read,
    idempotency_claim,
    ledger_of,
    not_found,
    require_party,
    require_role,
    transfer_parties,
)
from api.errors import PROBLEM_JSON, ApiProblem, domain_problem, problem_response
from api.schemas import (
    AuthorizationOut,
    AuthorizationPage,
    AuthorizationRequestIn,
    ConsistencyProofOut,
    DecisionIn,
    FeedPage,
    Health,
    InclusionProofOut,
    LineageOut,
    Problem,
    RevocationIn,
    TransferDetailOut,
    TransferIn,
    TransferOut,
    TransferPage,
)
from api.witness_routes import checkpoint_note
from domain.errors import DomainError, NotFound
from domain.rules import not_origin
from domain.values import parse_datetime
from ledger.service.application import AlreadyDone, Prepare, TransferLedger
from ledger.service.group_commit import Overloaded
from ledger.service.node_cache import NodeCache, StoredNodesMissing
from ledger.storage.principals import Principal

router = APIRouter()
_encode_json = msgspec.json.Encoder().encode

_PROBLEM_TEXTS = {
    400: "The body is not valid JSON (`malformed-json`)",
    401: "No API key, or an unknown or revoked one (`authentication-required`, `invalid-api-key`)",
    403: "The key's role or Party does not allow this (`role-required`, `not-your-party`, `not-origin`)",
    404: "Nothing with this id that the key may see: another Party's objects answer 404 as if they did not exist",
    409: "Refused by a rule of the Convention, e.g. `onward-transfer-not-authorized`, `authorization-revoked`, "
         "`written-instrument-required`",
    413: "Request body too large (`body-too-large`)",
    422: "Invalid input: `field` names the offending field and `rule` the rule (e.g. `invalid-input`, "
         "`unknown-party`, `idempotency-key-reused`)",
    503: "Stored Merkle nodes are missing (`nodes-missing`): the ledger needs `transfer-ledger verify`",
}


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses of a route, for the OpenAPI document (RFC 9457 ``Problem``)."""
    return {status: {"model": Problem, "description": _PROBLEM_TEXTS[status]} for status in statuses}


#: Reads: who may see what, and the id or query parameter was wrong.
_READ = _problems(401, 403, 404, 422)
#: Commands: also refusals by a rule and oversized bodies.
_COMMAND = {
    **_problems(400, 401, 403, 404, 409, 413, 422),
    503: {"model": Problem, "description": "The commit queue is full (`overloaded`): nothing was recorded; "
          "retry after the `Retry-After` seconds, with the same `Idempotency-Key`"},
}
#: Lists and the feed: an empty page rather than 404.
_LIST = _problems(401, 403, 422)
#: Proofs: also stored Merkle nodes missing (run ``transfer-ledger verify``).
_PROOF = _problems(401, 403, 422, 503)
#: A path names an object; one that is not a UUID names nothing, so it answers 404 like an unknown id.
UUID_PATH = Path(description="The object's id, a UUID", json_schema_extra={"format": "uuid"})


def _path_id(value: str, what: str) -> str:
    """The canonical form of an id in a path, or 404."""
    try:
        return str(UUID(value))
    except ValueError:
        raise not_found(what, value) from None


async def _command(
    request: Request,
    ledger: TransferLedger,
    principal: Principal,
    key: str | None,
    body: dict[str, Any],
    status: int,
    plan: Callable[[Any], Prepare],
) -> Response:
    """Run a command once per idempotency key; refusals are problems.

    The request is parsed here; the command is written by group commit, and
    this request waits for its batch without holding a thread.
    """
    claim = idempotency_claim(request, principal, key, body, status)
    try:
        if claim is not None:
            done = ledger.replay(claim)
            if done is not None:
                return _stored(*done)
        return _json(await ledger.run_async(plan(claim)), status)
    except AlreadyDone as done:
        return _stored(done.status, done.body)
    except Overloaded as busy:
        # Nothing was recorded (and no idempotency key was used): the client retries.
        raise ApiProblem(503, "overloaded", str(busy), headers={"Retry-After": str(busy.retry_after)}) from None
    except DomainError as error:
        code, problem = domain_problem(error, request.url.path)
        if claim is not None and error.rule != "idempotency-key-reused":
            await run_in_threadpool(ledger.remember_refusal, claim, code, problem)
        return problem_response(code, problem)


def _json(body: dict[str, Any], status: int) -> Response:
    """A command's answer: JSON as ``JSONResponse`` writes it (compact, UTF-8), encoded by msgspec."""
    return Response(_encode_json(body), status_code=status, media_type="application/json")


def _stored(status: int, body: dict[str, Any]) -> Response:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media)


def _body(model: Any) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)  # type: ignore[no-any-return]


# -- transfers -------------------------------------------------------------------


@router.post("/v1/transfers", status_code=201, response_model=TransferOut, responses=_COMMAND,
             tags=["transfers"], summary="Record a transfer (art. 36 §3 for onward transfers)")
async def record_transfer(body: TransferIn, request: Request, principal: CurrentPrincipal,
                          idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    require_role(principal, "recorder")
    require_party(principal, body.sender.party, "sender.party", "record transfers it does not send")
    _refer_only_to_readable(ledger, principal, body.parent_transfer_id, body.authorization_id)
    data = _body(body)
    return await _command(request, ledger, principal, idempotency_key, data, 201,
                          lambda claim: ledger.plan_record_transfer(data, idempotency=claim))


def _refer_only_to_readable(ledger: TransferLedger, principal: Principal, parent_transfer_id: str | None,
                            authorization_id: str | None = None) -> None:
    """A command naming another Party's transfer or authorization is told it does not exist.

    Answered exactly as for an unknown id, so that a refusal (e.g. ``not-holder``) does not
    reveal who sent what to whom. Malformed and unknown ids are left to the command.
    """
    if parent_transfer_id is not None:
        try:
            parent = ledger.get_transfer(parent_transfer_id)
        except DomainError:
            pass
        else:
            if not can_read(principal, transfer_parties(parent)):
                raise NotFound(f"no transfer {parent['id']}", rule="transfer-not-found",
                               field="parent_transfer_id", values={"id": parent["id"]})
    if authorization_id is not None:
        try:
            authorization = ledger.get_authorization(authorization_id)
        except DomainError:
            pass
        else:
            if not can_read(principal, authorization_parties(authorization)):
                raise NotFound(f"no authorization request {authorization['id']}", rule="authorization-not-found",
                               field="authorization_id", values={"id": authorization["id"]})


def _readable_transfer(ledger: TransferLedger, principal: Principal, transfer_id: str) -> dict[str, Any]:
    """The transfer, with only the ancestors the principal may read (parent first)."""
    require_role(principal, *READER_ROLES)
    try:
        view = ledger.get_transfer(transfer_id)
    except NotFound:
        raise not_found("transfer", transfer_id) from None
    if not can_read(principal, transfer_parties(view)):
        raise not_found("transfer", transfer_id)
    view["ancestors"] = [a for a in view["ancestors"] if can_read(principal, transfer_parties(a))]
    return view


@router.get("/v1/transfers/{transfer_id}", response_model=TransferDetailOut, responses=_READ,
            tags=["transfers"], summary="One transfer, with its origin, leaf index and ancestors")
def get_transfer(principal: CurrentPrincipal, ledger: Ledger,
                 transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    return _readable_transfer(ledger, principal, _path_id(transfer_id, "transfer"))


@router.get("/v1/transfers/{transfer_id}/lineage", response_model=LineageOut, responses=_READ,
            tags=["transfers"], summary="A transfer's lineage: its origin, ancestors and descendants")
def lineage(principal: CurrentPrincipal, ledger: Ledger,
            transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = _readable_transfer(ledger, principal, _path_id(transfer_id, "transfer"))
    root = view["root_transfer_id"]
    below, descendants = {view["id"]}, []
    after: int | None = 0
    while after is not None:  # the lineage in commit order: a parent is recorded before its children
        page, after = ledger.list_transfers(visible=lambda v: v["root_transfer_id"] == root, after=after,
                                            limit=500, mentions=(root,))
        for item in page:
            if item["parent_transfer_id"] in below:
                below.add(item["id"])
                if can_read(principal, transfer_parties(item)):
                    descendants.append(item)
    transfer = {k: v for k, v in view.items() if k != "ancestors"}
    return {"id": view["id"], "origin": view["origin"], "root_transfer_id": root, "transfer": transfer,
            "ancestors": view["ancestors"], "descendants": descendants}


def _readable_share(principal: Principal) -> tuple[str, ...]:
    """What every object the principal may read mentions: its Party, unless it reads everything."""
    return () if principal.has_role("auditor") and principal.is_global else (principal.party,)


CURSOR = Query(pattern="^[0-9]{1,18}$", description="next_cursor of the previous page")


def _cursor(value: str | None) -> int:
    return int(value) if value is not None else 0


@router.get("/v1/transfers", response_model=TransferPage, responses=_LIST, tags=["transfers"],
            summary="Transfers the key may read, in commit order")
def list_transfers(
    principal: CurrentPrincipal,
    ledger: Ledger,
    party: Annotated[str | None, Query(max_length=16, description="Sender, recipient or origin")] = None,
    origin: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=40, description="transferred_at at or after (RFC 3339)",
                                     json_schema_extra={"format": "date-time"})] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_transfers(
        visible=lambda view: can_read(principal, transfer_parties(view)),
        party=party,
        origin=origin,
        since=parse_datetime(since, "since") if since is not None else None,
        after=_cursor(cursor),
        limit=limit,
        mentions=_readable_share(principal),
    )
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor is not None else None}


# -- authorizations --------------------------------------------------------------


@router.post("/v1/authorization-requests", status_code=201, response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"],
             summary="Notify the origin of an intended onward transfer and request its authorization")
async def request_authorization(body: AuthorizationRequestIn, request: Request, principal: CurrentPrincipal,
                                idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    require_role(principal, "recorder")
    require_party(principal, body.requested_by.party, "requested_by.party",
                  "request authorization for data held by another Party")
    _refer_only_to_readable(ledger, principal, body.parent_transfer_id)
    data = _body(body)
    return await _command(request, ledger, principal, idempotency_key, data, 201,
                          lambda claim: ledger.plan_request_authorization(data, idempotency=claim))


def _authorization_for_origin(ledger: TransferLedger, principal: Principal, path_id: str,
                              actor_party: str, field: str) -> str:
    """Only an authority of the origin decides or revokes; others are told why, or nothing.

    Returns the authorization's id in canonical form.
    """
    require_role(principal, "authority")
    authorization_id = _path_id(path_id, "authorization")
    try:
        view = ledger.get_authorization(authorization_id)
    except NotFound:
        raise not_found("authorization", authorization_id) from None
    violation = not_origin(principal.party, view["origin"], field)
    if violation is not None:
        if not can_read(principal, authorization_parties(view)):
            raise not_found("authorization", authorization_id)
        raise ApiProblem(403, violation.rule, f"{violation.detail} ({violation.article}); "
                         f"this key belongs to {principal.party}")
    require_party(principal, actor_party, field, "act")
    return authorization_id


@router.post("/v1/authorization-requests/{authorization_id}/decision", response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"],
             summary="The origin grants (with conditions) or refuses (with reasons)")
async def decide(body: DecisionIn, request: Request, principal: CurrentPrincipal,
                 authorization_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    auth_id = _authorization_for_origin(ledger, principal, authorization_id, body.decided_by.party,
                                        "decided_by.party")
    data = _body(body)
    return await _command(request, ledger, principal, idempotency_key, data, 200,
                          lambda claim: ledger.plan_decide(auth_id, data, idempotency=claim))


@router.post("/v1/authorizations/{authorization_id}/revocation", response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"], summary="The origin revokes a grant")
async def revoke(body: RevocationIn, request: Request, principal: CurrentPrincipal,
                 authorization_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    auth_id = _authorization_for_origin(ledger, principal, authorization_id, body.revoked_by.party,
                                        "revoked_by.party")
    data = _body(body)
    return await _command(request, ledger, principal, idempotency_key, data, 200,
                          lambda claim: ledger.plan_revoke(auth_id, data, idempotency=claim))


def _readable_authorization(ledger: TransferLedger, principal: Principal, authorization_id: str) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    try:
        view = ledger.get_authorization(authorization_id)
    except NotFound:
        raise not_found("authorization", authorization_id) from None
    if not can_read(principal, authorization_parties(view)):
        raise not_found("authorization", authorization_id)
    return view


@router.get("/v1/authorizations/{authorization_id}", response_model=AuthorizationOut, responses=_READ,
            tags=["authorizations"], summary="An authorization: status, conditions, uses")
def get_authorization(principal: CurrentPrincipal, ledger: Ledger,
                      authorization_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    return _readable_authorization(ledger, principal, _path_id(authorization_id, "authorization"))


@router.get("/v1/authorization-requests/{authorization_id}", response_model=AuthorizationOut,
            responses=_READ, tags=["authorizations"], summary="An authorization request and its decision")
def get_authorization_request(principal: CurrentPrincipal, ledger: Ledger,
                              authorization_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    return _readable_authorization(ledger, principal, _path_id(authorization_id, "authorization"))


@router.get("/v1/authorization-requests", response_model=AuthorizationPage, responses=_LIST,
            tags=["authorizations"], summary="Authorization requests the key may read, in commit order")
def list_authorization_requests(
    principal: CurrentPrincipal,
    ledger: Ledger,
    status: Annotated[str | None, Query(pattern="^(pending|granted|refused|revoked)$")] = None,
    party: Annotated[str | None, Query(max_length=16, description="Origin, holder or recipient")] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_authorizations(
        visible=lambda view: can_read(principal, authorization_parties(view)),
        status=status, party=party, after=_cursor(cursor), limit=limit, mentions=_readable_share(principal),
    )
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor is not None else None}


# -- the ledger: feed, checkpoint, proofs ----------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (UUID, datetime)):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    return value


@router.get("/v1/events", response_model=FeedPage, responses=_LIST, tags=["ledger"],
            summary="The ledger feed in leaf order (auditors of the whole ledger)")
def events(
    principal: CurrentPrincipal,
    ledger: Ledger,
    after: Annotated[int, Query(ge=-1, le=2**62, description="Leaf index; the feed starts after it")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    require_role(principal, "auditor")
    if not principal.is_global:
        raise ApiProblem(403, "not-your-party",
                         "the whole feed is for auditors of the whole ledger (party *); "
                         "a Party's auditor reads its share through /v1/transfers")
    rows = ledger.store.read_feed(after + 1, limit)
    items = []
    for leaf, event in rows:
        domain_event = ledger.mapper.to_domain_event(
            StoredEvent(UUID(leaf.originator_id), leaf.originator_version, event.topic, event.state)
        )
        items.append({
            "leaf_index": leaf.leaf_index,
            "leaf_hash": base64.b64encode(leaf.leaf_hash).decode(),
            "recorded_at": leaf.recorded_at,
            "originator_id": leaf.originator_id,
            "originator_version": leaf.originator_version,
            "topic": event.topic,
            "event": _json_safe(dict(domain_event.__dict__)),
        })
    next_after = rows[-1][0].leaf_index if len(rows) == limit else None
    return {"items": items, "next_after": next_after}


@router.get("/v1/checkpoint", response_class=PlainTextResponse, responses={
    **_problems(401, 404, 422),
    503: {"model": Problem, "description": "The stored tree no longer has the root of a checkpoint signed "
          "before (`tree-inconsistent`): nothing is signed; run `transfer-ledger verify`"}},
            tags=["ledger"], summary="The latest checkpoint (or a stored earlier one), a C2SP signed note "
            "with its witnesses' cosignatures")
def checkpoint(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    tree_size: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="The size of a stored checkpoint; "
                                           "default: sign and serve the latest")] = None,
) -> PlainTextResponse:
    del principal  # anyone with a key
    return PlainTextResponse(checkpoint_note(request, ledger, tree_size), media_type="text/plain; charset=utf-8")


def _tree_size(ledger: TransferLedger) -> int:
    return ledger.store.head().size


def _proof(request: Request, make: Callable[[NodeCache], Any]) -> Any:
    """A proof from the process's in-memory copy of the stored nodes, or 503 if any is missing."""
    try:
        return make(request.app.state.proofs)
    except StoredNodesMissing:
        raise ApiProblem(503, "nodes-missing", "stored Merkle nodes are missing: run transfer-ledger verify") from None


@router.get("/v1/proofs/inclusion", response_model=InclusionProofOut, responses=_PROOF, tags=["ledger"],
            summary="RFC 9162 inclusion proof of a leaf in a tree size")
def inclusion(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    index: Annotated[int, Query(ge=0, le=2**62)],
    tree_size: Annotated[int, Query(ge=1, le=2**62)],
) -> dict[str, Any]:
    require_role(principal, "verifier", "auditor")
    size = _tree_size(ledger)
    if tree_size > size:
        raise ApiProblem(422, "tree-size-out-of-range", f"tree_size {tree_size} exceeds the ledger's {size}",
                         field="tree_size")
    if index >= tree_size:
        raise ApiProblem(422, "index-out-of-range", f"index {index} is not below tree_size {tree_size}",
                         field="index")
    leaf_hash, proof = _proof(
        request, lambda nodes: (nodes.leaf_hash(index), nodes.inclusion_proof(index, tree_size))
    )
    b64 = base64.b64encode
    return {"leaf_index": index, "tree_size": tree_size, "leaf_hash": b64(leaf_hash).decode(),
            "proof": [b64(p).decode() for p in proof]}


@router.get("/v1/proofs/consistency", response_model=ConsistencyProofOut, responses=_PROOF, tags=["ledger"],
            summary="RFC 9162 consistency proof between two tree sizes")
def consistency(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: Annotated[int, Query(ge=1, le=2**62)],
) -> dict[str, Any]:
    require_role(principal, "verifier", "auditor")
    size = _tree_size(ledger)
    if second > size:
        raise ApiProblem(422, "tree-size-out-of-range", f"second {second} exceeds the ledger's {size}",
                         field="second")
    if first > second:
        raise ApiProblem(422, "tree-size-out-of-range", f"first {first} exceeds second {second}", field="first")
    proof = _proof(request, lambda nodes: nodes.consistency_proof(first, second))
    return {"first": first, "second": second, "proof": [base64.b64encode(p).decode() for p in proof]}


@router.get("/healthz", response_model=Health, tags=["health"], summary="Liveness (and the database answers)")
def healthz(ledger: Ledger) -> dict[str, Any]:
    committer = ledger.committer
    stats = committer.stats.as_dict() if committer is not None else None
    return {"status": "ok", "tree_size": _tree_size(ledger), "group_commit": stats}
