"""The auditor's console: server-rendered pages at ``/console`` (docs/CONSOLE.md).

Each page reads through what the API's routes read through (``api.views``, the read
models' queries, the proofs of the stored nodes) with the same access rules: a Party's
auditor sees its Party's share, another Party's transfer answers "not found", and every
read of personal data is logged in the consultation log with the justification given
at sign-in. Nothing here decides a rule.
"""

from __future__ import annotations

import base64
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from api import views
from api.audit_routes import fresh
from api.console import graph
from api.console.session import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    TRUST_COOKIE,
    TRUST_SECONDS,
    Session,
    Sessions,
    login_nonce,
)
from api.console.status import compute_status, parse_witnesses, run_verification
from api.deps import (
    READER_ROLES,
    Reading,
    can_read,
    cosignatures_of,
    ledger_of,
    read_models_of,
    reading_for,
    transfer_parties,
)
from api.errors import ApiProblem, domain_problem
from domain.consultation import MAX_JUSTIFICATION
from domain.errors import DomainError
from domain.values import parse_datetime
from ledger.audit.certificates import CertificateError, leaf_inclusion
from ledger.service.application import TransferKeys
from ledger.service.checkpoints import InconsistentTreeError, sign_current_checkpoint
from ledger.storage.cosignatures import cosigned_note
from ledger.storage.principals import Principal
from ledger.tlog.cosignature import CosignatureError
from ledger.tlog.merkle import ProofError, leaf_hash, verify_inclusion
from ledger.tlog.note import NoteError, open_checkpoint
from ledger.tlog.tlog_proof import format_tlog_proof
from projections import queries
from projections.events import now_time

router = APIRouter(prefix="/console", include_in_schema=False)

templates = Environment(loader=PackageLoader("api.console", "templates"), autoescape=select_autoescape(),
                        trim_blocks=True, lstrip_blocks=True)

#: What a console page may load: its own styles, scripts and images; no frame may embed it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Pages show personal data and legal state: never kept by a shared cache or the browser's history cache.
    "Cache-Control": "no-store",
}

PAGE_SIZE = 25
#: The console's roles: auditors read everything their share holds; verifiers see the status page.
CONSOLE_ROLES = ("auditor", "verifier")


class SignInNeeded(Exception):
    def __init__(self, next_path: str, message: str | None = None) -> None:
        super().__init__(message or "sign in")
        self.next_path, self.message = next_path, message


class Visitor:
    """A signed-in auditor: the principal, the session, the CSRF token of its forms."""

    def __init__(self, request: Request, principal: Principal, session: Session, cookie: str,
                 sessions: Sessions) -> None:
        self.request, self.principal, self.session = request, principal, session
        self.csrf = sessions.csrf_token(cookie)

    @property
    def share(self) -> str | None:
        return None if self.principal.is_global else self.principal.party

    def reading(self) -> Reading:
        return reading_for(self.request, self.principal, self.session.justification, self.session.officer)

    def require(self, *roles: str) -> None:
        if not any(self.principal.has_role(r) for r in roles):
            raise ApiProblem(403, "role-required", f"this page needs the role {' or '.join(roles)}; "
                             f"your key has {', '.join(sorted(self.principal.roles))}")


def sessions_of(request: Request) -> Sessions:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def _next_path(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return path if path.startswith("/console") else "/console/"


def visitor_of(request: Request) -> Visitor:
    sessions = sessions_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = sessions.open_session(cookie)
    if session is None or cookie is None:
        raise SignInNeeded(_next_path(request), "Your session ended: sign in again." if cookie else None)
    principal = request.app.state.principals.authenticate(session.key)
    if principal is None:
        raise SignInNeeded(_next_path(request), "This key is unknown or was revoked.")
    return Visitor(request, principal, session, cookie, sessions)


def html(request: Request, template: str, code: int = 200, visitor: Visitor | None = None,
         **context: Any) -> HTMLResponse:
    page = templates.get_template(template).render(request=request, visitor=visitor, **context)
    return HTMLResponse(page, status_code=code, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, title: str, detail: str, rule: str | None = None) -> HTMLResponse:
    visitor = None
    try:
        visitor = visitor_of(request)
    except SignInNeeded:
        pass
    return html(request, "error.html", status, visitor, title=title, detail=detail, rule=rule, status=status)


def page(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A console page: sign-in redirects, problems and refusals shown as pages, not JSON."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            if inspect.iscoroutinefunction(handler):
                return await handler(*args, **kwargs)  # type: ignore[no-any-return]
            # a page that reads the database: off the event loop, as FastAPI runs a plain route
            return await run_in_threadpool(handler, *args, **kwargs)  # type: ignore[no-any-return]
        except SignInNeeded as needed:
            query = {"next": needed.next_path, **({"message": needed.message} if needed.message else {})}
            return RedirectResponse(f"/console/login?{urlencode(query)}", status_code=303)
        except ApiProblem as e:
            return error_page(request, e.status, e.title, e.detail, e.rule)
        except DomainError as e:
            status, body = domain_problem(e)
            return error_page(request, status, body["title"], body["detail"], body["rule"])

    return wrapper


async def form_of(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body: the first value of each field."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise ApiProblem(415, "unsupported-media-type", "console forms are sent as "
                         "application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _checked(visitor: Visitor, form: dict[str, str]) -> None:
    if not sessions_of(visitor.request).csrf_ok(visitor.request.cookies.get(SESSION_COOKIE), form.get("csrf")):
        raise ApiProblem(403, "csrf-token-invalid", "this form's CSRF token is missing or not this session's: "
                         "reload the page and send it again")


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


# -- sign-in -----------------------------------------------------------------------


@router.get("/login")
@page
def login_page(request: Request, next: Annotated[str, Query(max_length=2000)] = "/console/",
               message: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    nonce = login_nonce()
    response = html(request, "login.html", next=_safe_next(next), message=message, csrf=nonce, error=None)
    _cookie(response, request, LOGIN_COOKIE, nonce, 3600)
    return response


def _safe_next(value: str) -> str:
    """Only a console path: never another site (an open redirect)."""
    return value if value.startswith("/console") and not value.startswith("//") else "/console/"


@router.post("/login")
@page
async def login(request: Request) -> Response:
    form = await form_of(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    next_path = _safe_next(form.get("next", "/console/"))

    def again(status: int, error: str) -> Response:
        fresh_nonce = login_nonce()
        response = html(request, "login.html", status, next=next_path, message=None, csrf=fresh_nonce, error=error)
        _cookie(response, request, LOGIN_COOKIE, fresh_nonce, 3600)
        return response

    if not nonce or form.get("csrf") != nonce:
        return again(403, "This sign-in form has expired or was not sent from this console: try again.")
    key = form.get("api_key", "").strip()
    principal = request.app.state.principals.authenticate(key) if key else None
    if principal is None:
        return again(401, "This API key is unknown or was revoked.")
    if not any(principal.has_role(r) for r in CONSOLE_ROLES):
        return again(403, f"The console is for auditors and verifiers; this key has "
                     f"{', '.join(sorted(principal.roles))}.")
    officer = form.get("officer", "").strip()[:200] or None
    justification = form.get("justification", "").strip()[:MAX_JUSTIFICATION] or None
    try:  # the Party's policy may require a justification for reading personal data
        reading_for(request, principal, justification, officer)
    except ApiProblem as e:
        return again(e.status, e.detail)
    response = RedirectResponse(next_path, status_code=303)
    _cookie(response, request, SESSION_COOKIE, sessions_of(request).seal_session(key, officer, justification),
            SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    visitor = visitor_of(request)
    _checked(visitor, await form_of(request))
    response = RedirectResponse("/console/login?message=" + quote("You are signed out."), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# -- status ------------------------------------------------------------------------


def _status(request: Request, visitor: Visitor, **extra: Any) -> Response:
    ledger = ledger_of(request)
    trust = sessions_of(request).open_trust(request.cookies.get(TRUST_COOKIE))
    status = compute_status(ledger, request.app.state.signer, cosignatures_of(request), request.app.state.proofs,
                            request.app.state.console_data_dir, trust)
    return html(request, "status.html", visitor=visitor, status=status, trust=trust, **extra)


@router.get("/")
@page
def status_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require(*CONSOLE_ROLES)
    return _status(request, visitor, notice=None)


@router.post("/verify")
@page
async def verify_now(request: Request) -> Response:
    visitor = visitor_of(request)
    _checked(visitor, await form_of(request))
    visitor.require(*CONSOLE_ROLES)
    result = run_verification(ledger_of(request), request.app.state.signer, request.app.state.console_data_dir,
                              by=f"the console ({visitor.principal.name or visitor.principal.id})")
    notice = ("The verification could not complete: " + result["error"]) if result.get("incomplete") else None
    return _status(request, visitor, notice=notice)


@router.post("/trust")
@page
async def set_trust(request: Request) -> Response:
    """Pin the current checkpoint, or set the witnesses this auditor trusts and their quorum."""
    visitor = visitor_of(request)
    form = await form_of(request)
    _checked(visitor, form)
    visitor.require(*CONSOLE_ROLES)
    sessions = sessions_of(request)
    trust = sessions.open_trust(request.cookies.get(TRUST_COOKIE))
    action = form.get("action")
    if action == "pin":
        try:
            latest = sign_current_checkpoint(ledger_of(request).store, request.app.state.signer)
        except InconsistentTreeError as e:
            raise ApiProblem(503, "tree-inconsistent", f"{e}; nothing was signed, nothing pinned") from None
        trust["pin"] = {"tree_size": latest.tree_size, "root_hash": base64.b64encode(latest.root_hash).decode(),
                        "pinned_at": now_time(), "note": latest.note}
    elif action == "unpin":
        trust.pop("pin", None)
    elif action == "witnesses":
        text = form.get("witnesses", "")[:20000]
        try:
            known = parse_witnesses(text)
        except CosignatureError as e:
            raise ApiProblem(422, "invalid-vkey", str(e), field="witnesses") from None
        quorum_text = form.get("quorum", "").strip()
        if quorum_text and (not quorum_text.isdigit() or int(quorum_text) > len(known)):
            raise ApiProblem(422, "invalid-quorum", f"the quorum must be a whole number from 0 to the "
                             f"{len(known)} witnesses given, not {quorum_text[:10]!r}", field="quorum")
        trust["witnesses"], trust["quorum"] = text, int(quorum_text) if quorum_text else len(known)
    else:
        raise ApiProblem(422, "unknown-action", "action must be pin, unpin or witnesses", field="action")
    response = RedirectResponse("/console/", status_code=303)
    _cookie(response, request, TRUST_COOKIE, sessions.seal_trust(trust), TRUST_SECONDS)
    return response


# -- transfers ---------------------------------------------------------------------

SEARCH_FIELDS = ("id", "request_reference", "proceeding", "party", "authority", "legal_basis", "regime",
                 "handling_code", "since", "until")


def _search_keys(params: dict[str, str]) -> tuple[dict[str, Any], TransferKeys]:
    def day_or_time(name: str, end: bool) -> Any:
        value = params.get(name)
        if not value:
            return None
        if len(value) == 10:  # a date: from its first moment, or up to its last
            value += "T23:59:59.999999Z" if end else "T00:00:00Z"
        return parse_datetime(value, name)

    keys = TransferKeys(
        request_reference=params.get("request_reference") or None, proceeding=params.get("proceeding") or None,
        authority=params.get("authority") or None, legal_basis=params.get("legal_basis") or None,
        regime=params.get("regime") or None, handling_code=(params.get("handling_code") or None),
        until=day_or_time("until", True),
    )
    return {"party": params.get("party") or None, "since": day_or_time("since", False)}, keys


@router.get("/transfers")
@page
def transfers_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    params = {k: v.strip()[:200] for k, v in request.query_params.items() if k in (*SEARCH_FIELDS, "cursor")}
    if params.get("id"):
        return RedirectResponse(f"/console/transfers/{quote(params['id'])}", status_code=303)
    plain, keys = _search_keys(params)
    cursor = params.get("cursor", "")
    after = int(cursor) if cursor.isdigit() else 0
    ledger, principal = ledger_of(request), visitor.principal
    items, next_cursor = ledger.list_transfers(
        visible=lambda view: can_read(principal, transfer_parties(view)), party=plain["party"],
        since=plain["since"], after=after, limit=PAGE_SIZE, mentions=views.readable_share(principal), keys=keys)
    visitor.reading().transfers(items)
    query = {k: v for k, v in params.items() if v and k != "cursor"}
    next_url = f"/console/transfers?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None
    return html(request, "transfers.html", visitor=visitor, items=items, params=params, next_url=next_url,
                searched=bool(query))


def _signed_note(request: Request) -> str:
    ledger = ledger_of(request)
    try:
        latest = sign_current_checkpoint(ledger.store, request.app.state.signer)
    except InconsistentTreeError as e:
        raise ApiProblem(503, "tree-inconsistent", f"{e}; nothing was signed") from None
    return cosigned_note(latest.note, cosignatures_of(request).lines(latest.tree_size))


def _leaf_proof(request: Request, leaf_index: int) -> dict[str, Any]:
    """The leaf's bytes and hash, and its inclusion proof up to the latest signed checkpoint."""
    ledger = ledger_of(request)
    note = _signed_note(request)
    [(leaf, event)] = ledger.store.read_feed(leaf_index, 1) or [(None, None)]
    if leaf is None or event is None:
        raise ApiProblem(404, "leaf-not-found", f"no leaf {leaf_index}")
    try:
        data, hashes = leaf_inclusion(ledger.store, leaf, event, note)
    except CertificateError as e:
        raise ApiProblem(503, "nodes-missing", str(e)) from None
    lines = note.split("\n")
    size, root = int(lines[1]), base64.b64decode(lines[2])
    try:
        verify_inclusion(leaf_hash(data), leaf_index, size, hashes, root)
        server_verified = True
    except ProofError:
        server_verified = False
    try:
        signature_verified = open_checkpoint(note, request.app.state.signer.verifier()).root_hash == root
    except NoteError:
        signature_verified = False
    return {"leaf_index": leaf_index, "tree_size": size, "root_hash": lines[2],
            "server_verified": server_verified, "signature_verified": signature_verified,
            "leaf": base64.b64encode(data).decode(), "leaf_hash": base64.b64encode(leaf_hash(data)).decode(),
            "stored_leaf_hash": base64.b64encode(leaf.leaf_hash).decode(), "topic": event.topic,
            "proof": [base64.b64encode(h).decode() for h in hashes], "note": note,
            "tlog_proof": format_tlog_proof(leaf_index, hashes, note)}


def _timeline(request: Request, visitor: Visitor, view: dict[str, Any]) -> list[dict[str, Any]]:
    """What happened to the transfer's data, in leaf order: its own leaf, the authorization it
    travelled under, the requests and decisions about it, its onward hops, uses, erasure."""
    db = read_models_of(request).db
    events: list[dict[str, Any]] = [{"leaf_index": view["leaf_index"], "at": view["transferred_at"],
                                     "what": f"Transferred {view['sender']['party']} → {view['recipient']['party']}",
                                     "link": None}]
    share = visitor.share
    lineage = queries.lineage(db, view["id"], share)
    for hop in (lineage or {}).get("descendants", []):
        events.append({"leaf_index": hop["leaf_index"], "at": hop["transferred_at"],
                       "what": f"Onward transfer {hop['sender']} → {hop['recipient']}",
                       "link": f"/console/transfers/{hop['id']}"})
    registry = queries.authorizations(db, now=now_time(), share=share, after=-1, limit=1000)
    for item in registry.get("items", []):
        if item["parent_transfer_id"] != view["id"]:
            continue
        events.append({"leaf_index": item["requested_leaf"], "at": item["requested_at"],
                       "what": f"Authorization requested by {item['holder']['party']} to pass the data to "
                               f"{item['recipient']['party']}", "link": "/console/authorizations"})
        if item["decision"]:
            d = item["decision"]
            events.append({"leaf_index": d["decided_leaf"], "at": d["decided_at"],
                           "what": f"Authorization {d['decision']} by {d['decided_by']}",
                           "link": "/console/authorizations"})
    for use in view.get("uses") or []:
        events.append({"leaf_index": use.get("leaf_index"), "at": use.get("used_at") or use.get("recorded_at"),
                       "what": f"Used: {use.get('kind')} in {use.get('proceeding')}", "link": None})
    if view.get("erasure"):
        erasure = view["erasure"]
        events.append({"leaf_index": erasure.get("leaf_index"), "at": erasure.get("erased_at"),
                       "what": "Personal data erased", "link": None})
    return sorted(events, key=lambda e: (e["leaf_index"] is None, e["leaf_index"] or 0))


@router.get("/transfers/{transfer_id}")
@page
def transfer_page(request: Request, transfer_id: str) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    ledger = ledger_of(request)
    view = views.readable_transfer(ledger, visitor.principal, views.path_id(transfer_id, "transfer"))
    visitor.reading().transfers([view, *view["ancestors"]])
    proof = _leaf_proof(request, view["leaf_index"])
    fresh(request, ledger, None, 2.0)
    timeline = _timeline(request, visitor, view)
    return html(request, "transfer.html", visitor=visitor, t=view, proof=proof, timeline=timeline)


@router.get("/transfers/{transfer_id}/proof.tlog-proof")
@page
def transfer_proof(request: Request, transfer_id: str) -> Response:
    """The transfer's leaf's C2SP tlog-proof against the latest signed checkpoint."""
    visitor = visitor_of(request)
    visitor.require("auditor")
    view = views.readable_transfer(ledger_of(request), visitor.principal, views.path_id(transfer_id, "transfer"))
    visitor.reading().transfer(view)
    proof = _leaf_proof(request, view["leaf_index"])
    name = f"transfer-{view['id']}-leaf-{view['leaf_index']}.tlog-proof"
    return Response(proof["tlog_proof"], media_type="text/plain; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/transfers/{transfer_id}/lineage")
@page
def lineage_page(request: Request, transfer_id: str) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    ledger = ledger_of(request)
    tid = views.path_id(transfer_id, "transfer")
    views.readable_transfer(ledger, visitor.principal, tid)  # 404 outside the share, as the API
    fresh(request, ledger, None, 2.0)
    db = read_models_of(request).db
    found = queries.lineage(db, tid, visitor.share)
    if found is None:
        raise ApiProblem(404, "transfer-not-found", f"no transfer {tid}")
    now = now_time()
    unauthorized = {f["transfer_id"] for f in queries.findings(db, now=now, share=visitor.share,
                                                                 rule="onward-transfer-not-authorized",
                                                                 limit=10000)["items"]}
    refused = [a for a in queries.authorizations(db, now=now, share=visitor.share, status="refused", after=-1,
                                                 limit=1000)["items"]
               if a["root_transfer_id"] == found["root_transfer_id"]]
    nodes = [*reversed(found["ancestors"]), found["transfer"], *found["descendants"]]
    visitor.reading().log("transfer", [n["id"] for n in nodes],
                          {p for n in nodes for p in (n["sender"], n["recipient"], n["origin"])})
    drawing = graph.lineage_svg(nodes, found["origin"], unauthorized, refused, selected=tid)
    return html(request, "lineage.html", visitor=visitor, lineage=found, nodes=nodes, svg=drawing,
                unauthorized=unauthorized, refused=refused)


# -- findings and the registry -----------------------------------------------------


@router.get("/findings")
@page
def findings_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    rule = request.query_params.get("rule") or None
    if rule is not None and rule not in queries.RULES:
        raise ApiProblem(422, "unknown-rule", f"no rule {rule[:60]!r}", field="rule")
    ledger = ledger_of(request)
    fresh(request, ledger, None, 2.0)
    answer = ledger.open_personal_named(queries.findings(read_models_of(request).db, now=now_time(),
                                                         share=visitor.share, rule=rule, limit=1000))
    visitor.reading().log("findings", sorted({f["transfer_id"] for f in answer["items"] if f.get("transfer_id")}),
                          [visitor.share] if visitor.share else ())
    return html(request, "findings.html", visitor=visitor, answer=answer, rule=rule,
                rules=sorted(queries.RULES.items()))


@router.get("/authorizations")
@page
def authorizations_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    status = request.query_params.get("status") or None
    if status is not None and status not in ("pending", "granted", "refused", "revoked"):
        raise ApiProblem(422, "unknown-status", "status must be pending, granted, refused or revoked",
                         field="status")
    ledger = ledger_of(request)
    fresh(request, ledger, None, 2.0)
    answer = ledger.open_personal_named(queries.authorizations(read_models_of(request).db, now=now_time(),
                                                               share=visitor.share, status=status, after=-1,
                                                               limit=1000))
    visitor.reading().log("authorization", [a["id"] for a in answer["items"]],
                          {p for a in answer["items"] for p in (a["origin"], a["holder"]["party"],
                                                                a["recipient"]["party"])})
    return html(request, "authorizations.html", visitor=visitor, answer=answer, status=status)


READER = READER_ROLES  # the API's reader roles, for the templates' wording
