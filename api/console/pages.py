"""The auditor's console: server-rendered pages at ``/console`` (docs/CONSOLE.md).

Each page reads through what the API's routes read through (``api.views``, the read
models' queries, the proofs of the stored nodes) with the same access rules: a Party's
auditor sees its Party's share, another Party's transfer answers "not found", and every
read of personal data is logged in the consultation log with the justification given
at sign-in. Nothing here decides a rule.
"""

from __future__ import annotations

import base64
import csv
import functools
import inspect
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from api import views
from api.audit_routes import fresh, replayed_state
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
    Reading,
    can_read,
    cosignatures_of,
    ledger_of,
    read_models_of,
    reading_for,
    transfer_parties,
)
from api.errors import ApiProblem, domain_problem
from api.witness_routes import checkpoint_note
from domain.consultation import LOG_PURPOSES, MAX_JUSTIFICATION, log_purpose_problem, object_ref
from domain.errors import DomainError
from domain.values import parse_datetime
from ledger.audit.certificates import CertificateError, leaf_inclusion
from ledger.service.application import TransferKeys
from ledger.service.checkpoints import InconsistentTreeError, sign_current_checkpoint
from ledger.service.consultations import log_time
from ledger.service.read_models import checkpoint_covering
from ledger.storage.consultations import parse_cursor
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


# -- time travel, CSV ----------------------------------------------------------------

#: The most rows a CSV export holds (a list longer than this is cut, and says so in its last line).
CSV_MAX_ROWS = 10_000


def as_of(request: Request) -> dict[str, Any] | None:
    """The moment a page is viewed at: ``at_index`` (a leaf) or ``at_time`` (a date, to its end, or an
    RFC 3339 time); None: now. 422 naming the parameter when it is neither."""
    query = request.query_params
    at_index, at_time = query.get("at_index", "").strip(), query.get("at_time", "").strip()
    if not at_index and not at_time:
        return None
    out: dict[str, Any] = {"at_index": None, "at_time": None}
    if at_index:
        if not at_index.isdigit() or len(at_index) > 18:
            raise ApiProblem(422, "invalid-input", f"at_index must be a leaf index, not {at_index[:20]!r}",
                             field="at_index")
        out["at_index"] = int(at_index)
    if at_time:
        text = at_time + ("T23:59:59.999999Z" if len(at_time) == 10 else "")
        parse_datetime(text, "at_time")
        out["at_time"] = text
    return out


def state_at(request: Request, visitor: Visitor, moment: dict[str, Any], models: tuple[str, ...],
             transfer_id: str | None = None) -> dict[str, Any]:
    """The read models replayed as of ``moment`` (as ``GET /v1/audit/state``), with the checkpoint covering it."""
    return replayed_state(ledger_of(request), request.app.state.signer, at_index=moment["at_index"],
                          at_time=moment["at_time"], share=visitor.share, models=models, transfer_id=transfer_id)


def csv_response(name: str, header: list[str], rows: list[list[Any]], cut: bool = False) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    if cut:
        writer.writerow([f"(cut at {CSV_MAX_ROWS} rows: narrow the search)"])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}.csv"'})


def wants_csv(request: Request) -> bool:
    fmt = request.query_params.get("format", "html")
    if fmt not in ("html", "csv"):
        raise ApiProblem(422, "unknown-format", f"format must be html or csv, not {fmt[:20]!r}", field="format")
    return fmt == "csv"


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None: removed)."""
    query = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return request.url.path + ("?" + urlencode(query) if query else "")


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


TRANSFER_CSV = ["leaf_index", "id", "transferred_at", "sender", "sender_authority", "recipient",
                "recipient_authority", "origin", "parent_transfer_id", "authorization_id", "legal_basis", "regime",
                "request_reference", "proceeding", "data_categories", "use_restrictions"]


def _transfer_row(t: dict[str, Any]) -> list[Any]:
    return [t["leaf_index"], t["id"], t["transferred_at"], t["sender"]["party"], t["sender"].get("authority"),
            t["recipient"]["party"], t["recipient"].get("authority"), t["origin"], t["parent_transfer_id"],
            t["authorization_id"], t["legal_basis"], t.get("regime"), t.get("request_reference"),
            (t.get("purpose") or {}).get("proceeding"), " ".join(t.get("data_categories") or ()),
            " | ".join((t.get("handling") or {}).get("use_restrictions") or ())]


def _cover(request: Request, moment: dict[str, Any] | None) -> dict[str, Any] | None:
    """The signed checkpoint that covers a leaf viewed as of (with the leaf's inclusion proof)."""
    if moment is None or moment["at_index"] is None:
        return None
    ledger = ledger_of(request)
    size = ledger.store.head().size
    if moment["at_index"] >= size:
        raise ApiProblem(422, "index-out-of-range", f"at_index {moment['at_index']} is not a leaf of the ledger "
                         f"(it has {size} leaves)", field="at_index")
    return checkpoint_covering(ledger, request.app.state.signer, moment["at_index"])


@router.get("/transfers")
@page
def transfers_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    params = {k: v.strip()[:200] for k, v in request.query_params.items() if k in (*SEARCH_FIELDS, "cursor")}
    if params.get("id"):
        return RedirectResponse(f"/console/transfers/{quote(params['id'])}", status_code=303)
    plain, keys = _search_keys(params)
    moment, as_csv = as_of(request), wants_csv(request)
    cover = _cover(request, moment)
    last_leaf = moment["at_index"] if moment else None
    last_time = parse_datetime(moment["at_time"], "at_time") if moment and moment["at_time"] else None
    cursor = params.get("cursor", "")
    after = int(cursor) if cursor.isdigit() else 0
    ledger, principal = ledger_of(request), visitor.principal

    def visible(view: dict[str, Any]) -> bool:
        if last_leaf is not None and view["leaf_index"] > last_leaf:
            return False
        if last_time is not None and parse_datetime(view["recorded_at"], "recorded_at") > last_time:
            return False
        return can_read(principal, transfer_parties(view))

    def search(after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        return ledger.list_transfers(visible=visible, party=plain["party"], since=plain["since"], after=after,
                                     limit=limit, mentions=views.readable_share(principal), keys=keys)

    if as_csv:
        rows: list[dict[str, Any]] = []
        position: int | None = 0
        while position is not None and len(rows) <= CSV_MAX_ROWS:
            page_items, position = search(position, 500)
            rows.extend(page_items)
        visitor.reading().transfers(rows[:CSV_MAX_ROWS])
        return csv_response("transfers", TRANSFER_CSV, [_transfer_row(t) for t in rows[:CSV_MAX_ROWS]],
                            cut=len(rows) > CSV_MAX_ROWS)
    items, next_cursor = search(after, PAGE_SIZE)
    visitor.reading().transfers(items)
    next_url = with_query(request, cursor=next_cursor) if next_cursor else None
    searched = any(v for k, v in params.items() if k != "cursor")
    return html(request, "transfers.html", visitor=visitor, items=items, params=params, next_url=next_url,
                searched=searched, moment=moment, cover=cover, csv_url=with_query(request, format="csv", cursor=None))


def _leaf_proof(request: Request, leaf_index: int, note: str | None = None) -> dict[str, Any]:
    """The leaf's bytes and hash, and its inclusion proof up to the checkpoint ``note`` (default: the
    latest, signed now)."""
    ledger = ledger_of(request)
    note = note or checkpoint_note(request, ledger, None)
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
    registry = queries.authorizations(db, now=now_time(), share=share, parent_id=view["id"], limit=CSV_MAX_ROWS)
    for item in registry["items"]:
        events.append({"leaf_index": item["requested_leaf"], "at": item["requested_at"],
                       "what": f"Authorization requested by {item['holder']['party']} to pass the data to "
                               f"{item['recipient']['party']}", "link": "/console/authorizations"})
        if item["decision"]:
            d = item["decision"]
            events.append({"leaf_index": d["decided_leaf"], "at": d["decided_at"],
                           "what": f"Authorization {d['decision']} by {d['decided_by']}",
                           "link": "/console/authorizations"})
    for consent in queries.consents_of(db, view["id"]):
        asked = f"Consent asked by {consent['requester']} of {consent['sender']} for {consent['proceeding']}"
        if consent["recipient"]:
            asked += f" (to pass the data to {consent['recipient']})"
        events.append({"leaf_index": consent["requested_leaf"], "at": None, "what": asked, "link": None})
        if consent["decided_leaf"] is not None:
            events.append({"leaf_index": consent["decided_leaf"], "at": None,
                           "what": f"Consent {consent['status']} by {consent['sender']}", "link": None})
    for use in view.get("uses") or []:
        events.append({"leaf_index": use.get("leaf_index"), "at": use.get("used_at") or use.get("recorded_at"),
                       "what": f"Used: {use.get('kind')} in {use.get('proceeding')}", "link": None})
    if view.get("erasure"):
        erasure = view["erasure"]
        events.append({"leaf_index": erasure.get("leaf_index"), "at": erasure.get("erased_at"),
                       "what": "Personal data erased", "link": None})
    return sorted(events, key=lambda e: (e["leaf_index"] is None, e["leaf_index"] or 0))


def _before(moment: dict[str, Any] | None, leaf_index: int | None, at: str | None) -> bool:
    """Whether something of this leaf (or time) had happened as of ``moment`` (None: now)."""
    if moment is None:
        return True
    if moment["at_index"] is not None and (leaf_index is None or leaf_index > moment["at_index"]):
        return False
    if moment["at_time"] is not None and at is not None:
        return parse_datetime(at, "at") <= parse_datetime(moment["at_time"], "at_time")
    return True


@router.get("/transfers/{transfer_id}")
@page
def transfer_page(request: Request, transfer_id: str) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    ledger = ledger_of(request)
    moment = as_of(request)
    cover = _cover(request, moment)
    view = views.readable_transfer(ledger, visitor.principal, views.path_id(transfer_id, "transfer"))
    if not _before(moment, view["leaf_index"], view["recorded_at"]):
        raise ApiProblem(404, "transfer-not-found", f"transfer {view['id']} was recorded at leaf "
                         f"{view['leaf_index']} ({view['recorded_at']}): not yet, as of this moment")
    visitor.reading().transfers([view, *view["ancestors"]])
    proof = _leaf_proof(request, view["leaf_index"], cover["note"] if cover else None)
    fresh(request, ledger, None, 2.0)
    timeline = [e for e in _timeline(request, visitor, view) if _before(moment, e["leaf_index"], e["at"])]
    return html(request, "transfer.html", visitor=visitor, t=view, proof=proof, timeline=timeline,
                moment=moment, cover=cover)


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


def _lineage_at(request: Request, visitor: Visitor, tid: str,
                moment: dict[str, Any] | None) -> tuple[dict[str, Any] | None, set[str], list[dict[str, Any]], Any]:
    """The lineage of ``tid`` now or as of ``moment``: the lineage, the hops found unauthorized, the
    requests refused in its tree, and the checkpoint covering the moment (None: now)."""
    if moment is not None:
        state = state_at(request, visitor, moment, ("lineage", "findings", "authorizations"), transfer_id=tid)
        found = state["lineage"].get("of_transfer")
        findings, registry, cover = state["findings"]["items"], state["authorizations"]["items"], state["checkpoint"]
    else:
        ledger = ledger_of(request)
        fresh(request, ledger, None, 2.0)
        db = read_models_of(request).db
        now = now_time()
        found = queries.lineage(db, tid, visitor.share)
        findings = queries.findings(db, now=now, share=visitor.share, rule="onward-transfer-not-authorized",
                                    limit=CSV_MAX_ROWS)["items"]
        registry = queries.authorizations(db, now=now, share=visitor.share, status="refused", limit=CSV_MAX_ROWS,
                                          root_id=found["root_transfer_id"] if found else None)["items"]
        cover = None
    unauthorized = {f["transfer_id"] for f in findings if f["rule"] == "onward-transfer-not-authorized"}
    refused = [a for a in registry if a["status"] == "refused" and found is not None
               and a["root_transfer_id"] == found["root_transfer_id"]]
    return found, unauthorized, refused, cover


def _moment_of(value: str, name: str) -> dict[str, Any]:
    """A diff's end: a tree size (its last leaf) or a date (to its end)."""
    if value.isdigit() and len(value) <= 18:
        if int(value) < 1:
            raise ApiProblem(422, "invalid-input", f"{name} must be a tree size of at least 1", field=name)
        return {"at_index": int(value) - 1, "at_time": None}
    if len(value) == 10:
        text = value + "T23:59:59.999999Z"
        parse_datetime(text, name)
        return {"at_index": None, "at_time": text}
    raise ApiProblem(422, "invalid-input", f"{name} must be a tree size or a date (YYYY-MM-DD), not {value[:20]!r}",
                     field=name)


def _nodes(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [*reversed(found["ancestors"]), found["transfer"], *found["descendants"]]


@router.get("/transfers/{transfer_id}/lineage")
@page
def lineage_page(request: Request, transfer_id: str) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    ledger = ledger_of(request)
    tid = views.path_id(transfer_id, "transfer")
    views.readable_transfer(ledger, visitor.principal, tid)  # 404 outside the share, as the API
    moment = as_of(request)
    found, unauthorized, refused, cover = _lineage_at(request, visitor, tid, moment)
    if found is None:
        raise ApiProblem(404, "transfer-not-found", f"no transfer {tid}" + (" as of this moment" if moment else ""))
    nodes = _nodes(found)
    diff = None
    query = request.query_params
    diff_from, diff_to = query.get("diff_from", "").strip(), query.get("diff_to", "").strip()
    if diff_from or diff_to:
        ends = {}
        for name, value in (("diff_from", diff_from), ("diff_to", diff_to)):
            if not value:
                raise ApiProblem(422, "invalid-input", f"{name} is needed for a diff", field=name)
            ends[name] = _lineage_at(request, visitor, tid, _moment_of(value, name))
        before = {n["id"]: n for n in _nodes(ends["diff_from"][0])} if ends["diff_from"][0] else {}
        after = {n["id"]: n for n in _nodes(ends["diff_to"][0])} if ends["diff_to"][0] else {}
        diff = {"from": diff_from, "to": diff_to,
                "added": [n for i, n in after.items() if i not in before],
                "gone": [n for i, n in before.items() if i not in after],
                "newly_unauthorized": sorted(ends["diff_to"][1] - ends["diff_from"][1]),
                "newly_refused": [r for r in ends["diff_to"][2]
                                  if r["id"] not in {x["id"] for x in ends["diff_from"][2]}]}
    visitor.reading().log("transfer", [n["id"] for n in nodes],
                          {p for n in nodes for p in (n["sender"], n["recipient"], n["origin"])})
    drawing = graph.lineage_svg(nodes, found["origin"], unauthorized, refused, selected=tid)
    return html(request, "lineage.html", visitor=visitor, lineage=found, nodes=nodes, svg=drawing,
                unauthorized=unauthorized, refused=refused, moment=moment, cover=cover, diff=diff)


# -- findings and the registry -----------------------------------------------------


FINDING_CSV = ["rule", "reason", "article", "leaf_index", "detected_at", "origin", "sender", "recipient",
               "transfer_id", "authorization_id", "detail", "evidence_leaves"]
AUTHORIZATION_CSV = ["id", "status", "origin", "holder", "recipient", "parent_transfer_id", "requested_at",
                     "requested_leaf", "decision", "decided_by", "decided_at", "decided_leaf", "reasons", "uses",
                     "max_transfers", "valid_until", "expired"]


@router.get("/findings")
@page
def findings_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    rule = request.query_params.get("rule") or None
    if rule is not None and rule not in queries.RULES:
        raise ApiProblem(422, "unknown-rule", f"no rule {rule[:60]!r}", field="rule")
    ledger, moment, as_csv = ledger_of(request), as_of(request), wants_csv(request)
    cover = None
    if moment is not None:
        state = state_at(request, visitor, moment, ("findings",))
        answer, cover = state["findings"], state["checkpoint"]
        if rule is not None:
            answer = {**answer, "items": [f for f in answer["items"] if f["rule"] == rule]}
    else:
        fresh(request, ledger, None, 2.0)
        answer = ledger.open_personal_named(queries.findings(read_models_of(request).db, now=now_time(),
                                                             share=visitor.share, rule=rule, limit=CSV_MAX_ROWS))
    visitor.reading().log("findings", sorted({f["transfer_id"] for f in answer["items"] if f.get("transfer_id")}),
                          [visitor.share] if visitor.share else ())
    if as_csv:
        return csv_response("findings", FINDING_CSV, [
            [f["rule"], f["reason"], f["article"], f["leaf_index"], f["detected_at"], f["parties"]["origin"],
             f["parties"]["sender"], f["parties"]["recipient"], f["transfer_id"], f["authorization_id"], f["detail"],
             " ".join(str(e["leaf_index"]) for e in f["evidence"])] for f in answer["items"]],
            cut=bool(answer.get("truncated")))
    return html(request, "findings.html", visitor=visitor, answer=answer, rule=rule,
                rules=sorted(queries.RULES.items()), moment=moment, cover=cover,
                csv_url=with_query(request, format="csv"))


@router.get("/authorizations")
@page
def authorizations_page(request: Request) -> Response:
    visitor = visitor_of(request)
    visitor.require("auditor")
    status = request.query_params.get("status") or None
    if status is not None and status not in ("pending", "granted", "refused", "revoked"):
        raise ApiProblem(422, "unknown-status", "status must be pending, granted, refused or revoked",
                         field="status")
    ledger, moment, as_csv = ledger_of(request), as_of(request), wants_csv(request)
    cover = None
    if moment is not None:
        state = state_at(request, visitor, moment, ("authorizations",))
        answer, cover = state["authorizations"], state["checkpoint"]
        if status is not None:
            answer = {**answer, "items": [a for a in answer["items"] if a["status"] == status]}
    else:
        fresh(request, ledger, None, 2.0)
        answer = ledger.open_personal_named(queries.authorizations(read_models_of(request).db, now=now_time(),
                                                                   share=visitor.share, status=status, after=-1,
                                                                   limit=CSV_MAX_ROWS))
    items = answer["items"]
    visitor.reading().log("authorization", [a["id"] for a in items],
                          {p for a in items for p in (a["origin"], a["holder"]["party"], a["recipient"]["party"])})
    if as_csv:
        def decision(a: dict[str, Any], key: str) -> Any:
            return (a["decision"] or {}).get(key)
        return csv_response("authorizations", AUTHORIZATION_CSV, [
            [a["id"], a["status"], a["origin"], a["holder"]["party"], a["recipient"]["party"], a["parent_transfer_id"],
             a["requested_at"], a["requested_leaf"], decision(a, "decision"), decision(a, "decided_by"),
             decision(a, "decided_at"), decision(a, "decided_leaf"), decision(a, "reasons"), a["uses"],
             a["max_transfers"], a["valid_until"], a["expired"]] for a in items])
    return html(request, "authorizations.html", visitor=visitor, answer=answer, status=status, moment=moment,
                cover=cover, csv_url=with_query(request, format="csv"))


# -- internal control ---------------------------------------------------------------


@router.get("/control")
@page
def control_page(request: Request) -> Response:
    """Internal control (Order 949 annex 3): the checks of the share's units, their conclusions and
    measures, and the control findings."""
    visitor = visitor_of(request)
    visitor.require("auditor")
    ledger, principal, moment = ledger_of(request), visitor.principal, as_of(request)
    cover = _cover(request, moment)
    checks: list[dict[str, Any]] = []
    position: int | None = 0
    while position is not None and len(checks) < CSV_MAX_ROWS:
        found, position = ledger.list_control_checks(
            visible=lambda view: principal.can_read({view["party"]}) and _before(moment, view.get("leaf_index"), None),
            after=position, limit=500, mentions=views.readable_share(principal))
        checks.extend(found)
    visitor.reading().log("control-check", [c["id"] for c in checks], {c["party"] for c in checks})
    if moment is not None:  # the findings as of then; a check shows its conclusion as it stands now
        all_findings = state_at(request, visitor, moment, ("findings",))["findings"]["items"]
    else:
        fresh(request, ledger, None, 2.0)
        all_findings = queries.findings(read_models_of(request).db, now=now_time(), share=visitor.share,
                                        limit=CSV_MAX_ROWS)["items"]
    findings = [f for f in all_findings if f["rule"].startswith("control-")]
    if wants_csv(request):
        return csv_response("control-checks", ["id", "party", "unit", "kind", "decided_on", "ends_on", "status",
                                               "leaf_index", "measures_open", "measures_overdue"], [
            [c["id"], c["party"], c["unit"], c["kind"], c.get("decided_on"), c.get("ends_on"), c["status"],
             c.get("leaf_index"), sum(m["status"] == "open" for m in c["measures"]),
             sum(m["status"] == "overdue" for m in c["measures"])] for c in checks])
    return html(request, "control.html", visitor=visitor, checks=checks, findings=findings, moment=moment,
                cover=cover, csv_url=with_query(request, format="csv"))


# -- a leaf, and the consultation log -------------------------------------------------


@router.get("/leaves/{leaf_index}")
@page
def leaf_page(request: Request, leaf_index: str) -> Response:
    """One leaf: its event as the feed gives it (``GET /v1/events``), its hash and its inclusion proof.
    For auditors of the whole ledger, as the feed; a Party's auditor is sent to the transfer it concerns."""
    visitor = visitor_of(request)
    visitor.require("auditor")
    if not leaf_index.isdigit() or len(leaf_index) > 18:
        raise ApiProblem(404, "leaf-not-found", f"no leaf {leaf_index[:20]!r}")
    index = int(leaf_index)
    ledger = ledger_of(request)
    if index >= ledger.store.head().size:
        raise ApiProblem(404, "leaf-not-found", f"no leaf {index}: the ledger has {ledger.store.head().size}")
    if not visitor.principal.is_global:
        views.require_whole_ledger_auditor(visitor.principal)
    [item] = views.feed(ledger, index - 1, 1)["items"]
    visitor.reading().log("feed", [f"leaves:{index}-{index}"], set())
    proof = _leaf_proof(request, index)
    return html(request, "leaf.html", visitor=visitor, item=item, proof=proof,
                event_json=json.dumps(item["event"], indent=2, ensure_ascii=False, sort_keys=True))


@router.get("/consultations")
@page
def consultations_page(request: Request) -> Response:
    """Self-monitoring (LED art. 25(2)): who read personal data, when, what and why. The purpose is asked
    first, and reading the log is logged with it, as ``GET /v1/audit/consultations``."""
    visitor = visitor_of(request)
    visitor.require("auditor")
    query = request.query_params
    purpose = query.get("purpose") or None
    if purpose is None:
        return html(request, "consultations.html", visitor=visitor, purpose=None, items=[], next_url=None,
                    purposes=LOG_PURPOSES, params={})
    wrong = log_purpose_problem(purpose)
    if wrong is not None:
        raise wrong
    params = {k: query.get(k, "").strip()[:100] for k in ("principal", "transfer", "since", "until")}
    since = log_time(parse_datetime(params["since"] + "T00:00:00Z", "since")) if params["since"] else None
    until = log_time(parse_datetime(params["until"] + "T23:59:59.999999Z", "until")) if params["until"] else None
    cursor = parse_cursor(query["cursor"]) if query.get("cursor") else None
    if query.get("cursor") and cursor is None:
        raise ApiProblem(422, "invalid-input", "this cursor was not given by this page", field="cursor")
    ledger = ledger_of(request)
    ledger.consultations.flush()
    items, next_cursor = ledger.consultations.page(
        principal=params["principal"] or None, party=None, share=visitor.share,
        object_ref=object_ref("transfer", params["transfer"].lower()) if params["transfer"] else None,
        since=since, until=until, cursor=cursor, limit=PAGE_SIZE * 4)
    visitor.reading().log("consultation", [item["id"] for item in items], [visitor.share] if visitor.share else [],
                          purpose=purpose)
    next_url = with_query(request, cursor=next_cursor) if next_cursor else None
    return html(request, "consultations.html", visitor=visitor, purpose=purpose, items=items, next_url=next_url,
                purposes=LOG_PURPOSES, params=params)


# -- the audit bundle of a selection -------------------------------------------------


@router.post("/bundle")
@page
async def bundle(request: Request) -> Response:
    """The audit bundle (``transfer-ledger export``) with the tlog-proofs of the selected transfers, as a
    zip. For auditors of the whole ledger: a bundle holds every leaf (no personal value in clear)."""
    visitor = visitor_of(request)
    form = await form_of(request)
    _checked(visitor, form)
    visitor.require("auditor")
    if not visitor.principal.is_global:
        raise ApiProblem(403, "not-your-party", "an audit bundle holds every leaf of the ledger: it is for "
                         "auditors of the whole ledger (party *); a Party's auditor exports CSV of its share")
    ids = [views.path_id(i.strip(), "transfer") for i in form.get("transfer_ids", "").replace(",", " ").split()
           if i.strip()][:1000]
    ledger = ledger_of(request)
    for tid in ids:
        views.readable_transfer(ledger, visitor.principal, tid)
    return await run_in_threadpool(_zipped_bundle, request, visitor, ids)


def _zipped_bundle(request: Request, visitor: Visitor, ids: list[str]) -> Response:
    from ledger.audit.bundles import ExportError, export_bundle

    ledger = ledger_of(request)
    work = Path(tempfile.mkdtemp(prefix="console-bundle-"))
    try:
        out = work / "bundle"
        try:
            result = export_bundle(ledger, request.app.state.signer, out, ids)
        except ExportError as e:
            raise ApiProblem(503, "export-refused", str(e)) from None
        visitor.reading().log("transfer", ids, set())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    archive.write(path, f"bundle/{path.relative_to(out)}")
        name = f"audit-bundle-{result.tree_size}.zip"
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})
    finally:
        shutil.rmtree(work, ignore_errors=True)

