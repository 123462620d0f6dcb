"""The routes of docs/API.md ("Endpoints"). They check who may do what (``api.views``)
and call the ledger application; every rule of the Convention lives in ``domain/``."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api import views
from api.deps import (
    READER_ROLES,
    CurrentPrincipal,
    IdempotencyKey,
    Ledger,
    Read,
    authorization_parties,
    can_read,
    cosignatures_of,
    idempotency_claim,
    ledger_of,
    not_found,
    require_party,
    require_role,
    transfer_parties,
)
from api.errors import PROBLEM_JSON, ApiProblem, domain_problem, problem_response
from api.responses import MALFORMED_JSON, PERSONAL_READ, UNAUTHENTICATED_RULES, body_too_large, problems
from api.schemas import (
    AcknowledgementIn,
    AuthorizationOut,
    AuthorizationPage,
    AuthorizationRequestIn,
    ConsistencyProofOut,
    DecisionIn,
    ErasureCertificateOut,
    ErasureIn,
    FeedPage,
    Health,
    InclusionProofOut,
    LineageOut,
    NoticeOut,
    NoticePage,
    RestrictionIn,
    RevocationIn,
    TransferDetailOut,
    TransferIn,
    TransferOut,
    TransferPage,
)
from api.witness_routes import checkpoint_note
from domain.errors import DomainError
from domain.values import parse_datetime
from ledger.audit.certificates import CertificateError, certify_erasure
from ledger.service.application import AlreadyDone, Prepare, TransferKeys, TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.service.group_commit import Overloaded
from ledger.service.node_cache import NodeCache, StoredNodesMissing
from ledger.storage.principals import Principal

router = APIRouter()
_encode_json = msgspec.json.Encoder().encode

_PROBLEM_TEXTS = {
    400: MALFORMED_JSON,
    401: UNAUTHENTICATED_RULES,
    403: "The key's role or Party does not allow this (`role-required`, `not-your-party`, `not-origin`)",
    404: "Nothing with this id that the key may see: another Party's objects answer 404 as if they did not exist",
    409: "Refused by a rule of the Convention, e.g. `onward-transfer-not-authorized`, `authorization-revoked`, "
         "`written-instrument-required`",
    413: body_too_large(),
    422: "Invalid input: `field` names the offending field and `rule` the rule (e.g. `invalid-input`, "
         "`unknown-party`, `idempotency-key-reused`)",
    503: "Stored Merkle nodes are missing (`nodes-missing`): the ledger needs `transfer-ledger verify`",
}


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses of a route, for the OpenAPI document (RFC 9457 ``Problem``)."""
    return problems({status: _PROBLEM_TEXTS[status] for status in statuses})


#: Reads: who may see what, and the id or query parameter was wrong.
_READ = _problems(401, 403, 404, 422)
#: Commands: also refusals by a rule and oversized bodies.
_COMMAND = {
    **_problems(400, 401, 403, 404, 409, 413, 422),
    **problems({503: "The commit queue is full (`overloaded`): nothing was recorded; "
                     "retry after the `Retry-After` seconds, with the same `Idempotency-Key`"}),
}
#: Lists and the feed: an empty page rather than 404.
_LIST = _problems(401, 403, 422)
#: Reads of personal data, logged (``Read``): also a justification required, or the log full.
_READ_LOGGED = {**_READ, **PERSONAL_READ}
_LIST_LOGGED = {**_LIST, **PERSONAL_READ}
#: Proofs: also stored Merkle nodes missing (run ``transfer-ledger verify``).
_PROOF = _problems(401, 403, 422, 503)
#: A path names an object; one that is not a UUID names nothing, so it answers 404 like an unknown id.
UUID_PATH = Path(description="The object's id, a UUID", json_schema_extra={"format": "uuid"})


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


def _fingerprinted(body: Any) -> dict[str, Any]:
    """What an idempotency key's request is compared by: the checked body, as JSON, without the fields left out."""
    return body.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


# -- transfers -------------------------------------------------------------------


@router.post("/v1/transfers", status_code=201, response_model=TransferOut, responses=_COMMAND,
             tags=["transfers"], summary="Record a transfer (art. 36 §3 for onward transfers)")
async def record_transfer(body: TransferIn, request: Request, principal: CurrentPrincipal,
                          idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    views.may_record_transfer(ledger, principal, body)
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_record_transfer(body, idempotency=claim))


@router.get("/v1/transfers/{transfer_id}", response_model=TransferDetailOut, responses=_READ_LOGGED,
            tags=["transfers"], summary="One transfer, with its origin, leaf index and ancestors")
def get_transfer(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                 transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views.readable_transfer(ledger, principal, views.path_id(transfer_id, "transfer"))
    read.transfers([view, *view["ancestors"]])
    return view


@router.get("/v1/transfers/{transfer_id}/lineage", response_model=LineageOut, responses=_READ_LOGGED,
            tags=["transfers"], summary="A transfer's lineage: its origin, ancestors and descendants")
def lineage(principal: CurrentPrincipal, ledger: Ledger, read: Read,
            transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views.lineage(ledger, principal, views.path_id(transfer_id, "transfer"))
    read.transfers([view["transfer"], *view["ancestors"], *view["descendants"]])
    return view


CURSOR = Query(pattern="^[0-9]{1,18}$", description="next_cursor of the previous page")


def _cursor(value: str | None) -> int:
    return int(value) if value is not None else 0


def _page(items: list[dict[str, Any]], next_cursor: int | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": str(next_cursor) if next_cursor is not None else None}


@router.get("/v1/transfers", response_model=TransferPage, responses=_LIST_LOGGED, tags=["transfers"],
            summary="Transfers the key may read, in commit order")
def list_transfers(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    party: Annotated[str | None, Query(max_length=16, description="Sender, recipient or origin")] = None,
    origin: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=40, description="transferred_at at or after (RFC 3339)",
                                     json_schema_extra={"format": "date-time"})] = None,
    until: Annotated[str | None, Query(max_length=40, description="transferred_at before (RFC 3339)",
                                     json_schema_extra={"format": "date-time"})] = None,
    request_reference: Annotated[str | None, Query(max_length=200, description="The request answered")] = None,
    proceeding: Annotated[str | None, Query(max_length=200, description="purpose.proceeding")] = None,
    authority: Annotated[str | None, Query(max_length=130, description="The sender's or the recipient's "
                                           "authority")] = None,
    legal_basis: Annotated[str | None, Query(max_length=40)] = None,
    regime: Annotated[str | None, Query(max_length=40)] = None,
    handling_code: Annotated[str | None, Query(pattern="^H[0-3]$", description="A code of "
                                               "handling.use_restrictions (free text counts as H3)")] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    keys = TransferKeys(request_reference=request_reference, proceeding=proceeding, authority=authority,
                        legal_basis=legal_basis, regime=regime, handling_code=handling_code,
                        until=parse_datetime(until, "until") if until is not None else None)
    items, next_cursor = ledger.list_transfers(
        visible=lambda view: can_read(principal, transfer_parties(view)),
        party=party,
        origin=origin,
        since=parse_datetime(since, "since") if since is not None else None,
        after=_cursor(cursor),
        limit=limit,
        mentions=views.readable_share(principal),
        keys=keys,
    )
    return _page(read.transfers(items), next_cursor)


# -- authorizations --------------------------------------------------------------


@router.post("/v1/authorization-requests", status_code=201, response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"],
             summary="Notify the origin of an intended onward transfer and request its authorization")
async def request_authorization(body: AuthorizationRequestIn, request: Request, principal: CurrentPrincipal,
                                idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    views.may_request_authorization(ledger, principal, body)
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_request_authorization(body, idempotency=claim))


@router.post("/v1/authorization-requests/{authorization_id}/decision", response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"],
             summary="The origin grants (with conditions) or refuses (with reasons)")
async def decide(body: DecisionIn, request: Request, principal: CurrentPrincipal,
                 authorization_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _by_origin(request, principal, authorization_id, idempotency_key, body, body.decided_by.party,
                            "decided_by.party", TransferLedger.plan_decide)


@router.post("/v1/authorizations/{authorization_id}/revocation", response_model=AuthorizationOut,
             responses=_COMMAND, tags=["authorizations"], summary="The origin revokes a grant")
async def revoke(body: RevocationIn, request: Request, principal: CurrentPrincipal,
                 authorization_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _by_origin(request, principal, authorization_id, idempotency_key, body, body.revoked_by.party,
                            "revoked_by.party", TransferLedger.plan_revoke)


@router.post("/v1/transfers/{transfer_id}/erasure", response_model=TransferOut, responses=_COMMAND,
             tags=["personal data"], summary="Destroy a transfer's subject data; every leaf and proof stays valid")
async def erase(body: ErasureIn, request: Request, principal: CurrentPrincipal,
                transfer_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _by_party(request, principal, transfer_id, idempotency_key, body, body.erased_by.party,
                           "erased_by.party", TransferLedger.plan_erase_personal_data)


@router.get("/v1/transfers/{transfer_id}/erasure-certificate", response_model=ErasureCertificateOut,
            responses=_READ_LOGGED, tags=["personal data"],
            summary="The erasure's leaf, what it destroyed, and a tlog-proof against a signed checkpoint")
def erasure_certificate(request: Request, principal: CurrentPrincipal, ledger: Ledger, read: Read,
                        transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    transfer = read.transfer(views.readable_transfer(ledger, principal, views.path_id(transfer_id, "transfer")))
    try:
        return certify_erasure(ledger, transfer["id"], cosignatures_of(request),
                               lambda: sign_current_checkpoint(ledger.store, request.app.state.signer))
    except CertificateError as e:
        raise ApiProblem(503, "certificate-unavailable", str(e)) from None


@router.get("/v1/notices", response_model=NoticePage, responses=_LIST, tags=["personal data"],
            summary="Erasure notices to the key's Party (all, for an auditor of the whole ledger), in commit order")
def list_notices(principal: CurrentPrincipal, ledger: Ledger, cursor: Annotated[str | None, CURSOR] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_notices(party=None if principal.is_global else principal.party,
                                             after=_cursor(cursor), limit=limit)
    return _page(items, next_cursor)


@router.post("/v1/notices/{notice_id}/acknowledgement", response_model=NoticeOut, responses=_COMMAND,
             tags=["personal data"], summary="The Party told acknowledges an erasure notice")
async def acknowledge_notice(body: AcknowledgementIn, request: Request, principal: CurrentPrincipal,
                             notice_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    require_role(principal, "recorder", "authority")
    nid = views.path_id(notice_id, "notice")
    try:
        _, notice = await run_in_threadpool(ledger.find_notice, nid)
    except DomainError:
        raise not_found("notice", nid) from None
    if notice["party"] != principal.party:
        raise not_found("notice", nid)
    require_party(principal, body.acknowledged_by.party, "acknowledged_by.party", "act")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_acknowledge_notice(nid, body, idempotency=claim))


@router.post("/v1/transfers/{transfer_id}/restriction", response_model=TransferOut, responses=_COMMAND,
             tags=["personal data"], summary="Place an evidence hold: the data are not erased while it stands")
async def restrict(body: RestrictionIn, request: Request, principal: CurrentPrincipal,
                   transfer_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _by_party(request, principal, transfer_id, idempotency_key, body, body.by.party, "by.party",
                           TransferLedger.plan_restrict_processing)


@router.delete("/v1/transfers/{transfer_id}/restriction", response_model=TransferOut, responses=_COMMAND,
               tags=["personal data"], summary="Lift an evidence hold")
async def lift_restriction(body: RestrictionIn, request: Request, principal: CurrentPrincipal,
                           transfer_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _by_party(request, principal, transfer_id, idempotency_key, body, body.by.party, "by.party",
                           functools.partial(TransferLedger.plan_restrict_processing, lift=True))


async def _by_party(request: Request, principal: Principal, path_id: str, key: str | None, body: Any,
                    actor_party: str, field: str, plan: Callable[..., Prepare]) -> Response:
    """An erasure or a hold: only an authority of the sender or recipient acts; it answers 200."""
    ledger = ledger_of(request)
    transfer_id = views.transfer_for_party(ledger, principal, path_id, actor_party, field)
    return await _command(request, ledger, principal, key, _fingerprinted(body), 200,
                          lambda claim: plan(ledger, transfer_id, body, idempotency=claim))


async def _by_origin(request: Request, principal: Principal, path_id: str, key: str | None, body: Any,
                     actor_party: str, field: str, plan: Callable[..., Prepare]) -> Response:
    """A decision or a revocation: only an authority of the origin acts on an authorization
    (``actor_party``, in ``field``, is who it names as acting); it changes one, so it answers 200."""
    ledger = ledger_of(request)
    auth_id = views.authorization_for_origin(ledger, principal, path_id, actor_party, field)
    return await _command(request, ledger, principal, key, _fingerprinted(body), 200,
                          lambda claim: plan(ledger, auth_id, body, idempotency=claim))


@router.get("/v1/authorizations/{authorization_id}", response_model=AuthorizationOut, responses=_READ_LOGGED,
            tags=["authorizations"], summary="An authorization: status, conditions, uses")
def get_authorization(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                      authorization_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views.readable_authorization(ledger, principal, views.path_id(authorization_id, "authorization"))
    read.authorizations([view])
    return view


@router.get("/v1/authorization-requests/{authorization_id}", response_model=AuthorizationOut,
            responses=_READ_LOGGED, tags=["authorizations"], summary="An authorization request and its decision")
def get_authorization_request(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                              authorization_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views.readable_authorization(ledger, principal, views.path_id(authorization_id, "authorization"))
    read.authorizations([view])
    return view


@router.get("/v1/authorization-requests", response_model=AuthorizationPage, responses=_LIST_LOGGED,
            tags=["authorizations"], summary="Authorization requests the key may read, in commit order")
def list_authorization_requests(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    status: Annotated[str | None, Query(pattern="^(pending|granted|refused|revoked)$")] = None,
    party: Annotated[str | None, Query(max_length=16, description="Origin, holder or recipient")] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_authorizations(
        visible=lambda view: can_read(principal, authorization_parties(view)),
        status=status, party=party, after=_cursor(cursor), limit=limit, mentions=views.readable_share(principal),
    )
    return _page(read.authorizations(items), next_cursor)


# -- the ledger: feed, checkpoint, proofs ----------------------------------------------


@router.get("/v1/events", response_model=FeedPage, responses=_LIST_LOGGED, tags=["ledger"],
            summary="The ledger feed in leaf order (auditors of the whole ledger)")
def events(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    after: Annotated[int, Query(ge=-1, le=2**62, description="Leaf index; the feed starts after it")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    views.require_whole_ledger_auditor(principal)
    page = views.feed(ledger, after, limit)
    if page["items"]:  # a page of leaves: the range read (event format 1 holds personal values in clear)
        read.log("leaves", [f"{page['items'][0]['leaf_index']}-{page['items'][-1]['leaf_index']}"])
    return page


@router.get("/v1/checkpoint", response_class=PlainTextResponse, responses={
    **_problems(401, 404, 422),
    **problems({503: "The stored tree no longer has the root of a checkpoint signed "
                     "before (`tree-inconsistent`): nothing is signed; run `transfer-ledger verify`"})},
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


def _within_ledger(ledger: TransferLedger, name: str, size: int) -> None:
    """422 unless the tree size given as ``name`` is at most the ledger's."""
    ledger_size = _tree_size(ledger)
    if size > ledger_size:
        raise ApiProblem(422, "tree-size-out-of-range", f"{name} {size} exceeds the ledger's {ledger_size}",
                         field=name)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


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
    _within_ledger(ledger, "tree_size", tree_size)
    if index >= tree_size:
        raise ApiProblem(422, "index-out-of-range", f"index {index} is not below tree_size {tree_size}",
                         field="index")
    leaf_hash, proof = _proof(request, lambda nodes: (nodes.leaf_hash(index), nodes.inclusion_proof(index, tree_size)))
    return {"leaf_index": index, "tree_size": tree_size, "leaf_hash": _b64(leaf_hash), "proof": [*map(_b64, proof)]}


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
    _within_ledger(ledger, "second", second)
    if first > second:
        raise ApiProblem(422, "tree-size-out-of-range", f"first {first} exceeds second {second}", field="first")
    proof = _proof(request, lambda nodes: nodes.consistency_proof(first, second))
    return {"first": first, "second": second, "proof": [*map(_b64, proof)]}


@router.get("/healthz", response_model=Health, tags=["health"], summary="Liveness (and the database answers)")
def healthz(ledger: Ledger) -> dict[str, Any]:
    committer = ledger.committer
    stats = committer.stats.as_dict() if committer is not None else None
    log = ledger.consultations
    return {"status": "ok", "tree_size": _tree_size(ledger), "read_only": ledger.read_only, "group_commit": stats,
            "consultation_log": {"buffered": log.buffered, "written": log.written,
                                 "failed_flushes": log.failed_flushes}}
