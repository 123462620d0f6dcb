"""``transfer-ledger demo``: a multi-hop art. 36 §3 scenario, narrated.

DE sends FR data under art. 44 and requires written authorization; FR asks
DE to pass them to INTERPOL; DE grants in writing (a document reference and
digest); FR transfers; INTERPOL's onward transfer to a third State needs DE's
grant again (not FR's), which DE signs with its registered key; a refusal
with reasons; a revocation, and an onward transfer refused after it.
Then a signed checkpoint of it all.

On a ledger of event format 2 (what ``init`` starts), the personal data of the
first transfer go next: FR places an evidence hold, which refuses an erasure,
and lifts it; FR erases them; the erased fields read as erased; the Parties the
data went on to are notified, and INTERPOL acknowledges; and a certificate of
the erasure is written into the data dir and verified offline.

Then a third-country referral: executing FR's request, DE finds that the IP
addresses lead to NL; it informs NL and tells FR to turn there, in one command.

Last, DE's internal control (Order 949, annex 3): the BKA's yearly plan and its
planned check of the first transfers, concluded with a remedial measure; and an
unplanned check on a data subject's complaint, organized within five working
days, whose results are reported to the responsible official.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from domain.errors import DomainError
from domain.values import DecisionDraft
from ledger.config import VKEY_FILE
from ledger.service.application import TransferLedger, signed_decision_bytes
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.note import Signer

Say = Callable[[str], Any]

BKA = {"party": "DE", "authority": "DE/BKA", "officer": "Kriminalhauptkommissarin A. Keller"}
BMJ = {"party": "DE", "authority": "DE/BfJ", "officer": "Regierungsdirektor M. Brandt"}
OFAC = {"party": "FR", "authority": "FR/OFAC", "officer": "Commandant L. Moreau"}
IPSG = {"party": "INTERPOL", "authority": "INTERPOL/IPSG", "officer": "Analyst R. Okafor"}
PURPOSE = {"proceeding": "FR-PNC-2026-0417", "description": "ransomware attacks on hospitals"}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_demo(ledger: TransferLedger, signer: Signer, say: Say) -> None:
    def step(title: str) -> None:
        say("")
        say(f"== {title}")

    def refused(action: Callable[[], Any]) -> None:
        try:
            action()
        except DomainError as e:
            say(f"   REFUSED [{e.rule}] {e.detail}")
            say("   (nothing was recorded)")
            return
        raise AssertionError("the ledger accepted what it must refuse")

    step("1. DE (BKA) sends FR (OFAC) subscriber and traffic data under art. 44")
    first = ledger.record_transfer(
        {
            "sender": BKA,
            "recipient": {"party": "FR", "authority": "FR/OFAC"},
            "legal_basis": "art44",
            "request_reference": "FR-MLA-2026-112",
            "purpose": PURPOSE,
            "data_categories": ["subscriber", "traffic"],
            "subjects": ["person:FR-PNC-2026-0417/1", "person:FR-PNC-2026-0417/2"],
            "dataset_sha256": _digest("DE-BKA export 2026-03-01"),
            "item_count": 1840,
            "handling": {"written_authorization_required": True, "use_restrictions": ["H2"]},
            "retention_until": "2031-03-01",
            "justification": "MLA request FR-MLA-2026-112 (art. 40 §15)",
            "ordered_by": "Staatsanwältin C. Vogel",
        }
    )
    say(f"   recorded transfer {first['id']} at leaf {first['leaf_index']}; origin {first['origin']}")
    say("   DE requires any onward transfer to be authorized in writing.")

    step("2. FR wants to pass the traffic data to INTERPOL: it notifies DE and asks (art. 36 §3)")
    request = ledger.request_authorization(
        {
            "parent_transfer_id": first["id"],
            "requested_by": OFAC,
            "recipient": {"party": "INTERPOL", "authority": "INTERPOL/IPSG"},
            "purpose": PURPOSE,
            "data_categories": ["traffic"],
            "justification": "cross-match against INTERPOL's cybercrime databases",
        }
    )
    say(f"   request {request['id']} is {request['status']}; it must be decided by {request['origin']}")

    step("3. FR tries to decide on DE's data itself")
    refused(lambda: ledger.decide(request["id"], {"decision": "granted", "decided_by": OFAC}))

    step("4. DE grants - but first without the written instrument it requires")
    refused(lambda: ledger.decide(request["id"], {"decision": "granted", "decided_by": BMJ}))
    grant = ledger.decide(
        request["id"],
        {
            "decision": "granted",
            "decided_by": BMJ,
            "conditions": {
                "max_transfers": 1,
                "data_categories": ["traffic"],
                "purpose": PURPOSE,
                "written_instrument": {
                    "reference": "BfJ II B 4 - 9350/26",
                    "sha256": _digest("Bewilligung BfJ II B 4 - 9350/26"),
                },
            },
        },
    )
    say(f"   granted in writing: {grant['conditions']['written_instrument']['reference']}, "
        f"at most {grant['conditions']['max_transfers']} transfer, traffic data only")

    step("5. FR transfers the traffic data to INTERPOL under DE's grant")
    to_interpol = ledger.record_transfer(
        {
            "sender": OFAC,
            "recipient": {"party": "INTERPOL", "authority": "INTERPOL/IPSG"},
            "legal_basis": "art47",
            "purpose": PURPOSE,
            "data_categories": ["traffic"],
            "dataset_sha256": _digest("FR-OFAC extract for INTERPOL"),
            "parent_transfer_id": first["id"],
            "authorization_id": grant["id"],
        }
    )
    say(f"   recorded onward transfer {to_interpol['id']} at leaf {to_interpol['leaf_index']} "
        f"(depth {to_interpol['depth']}, origin still {to_interpol['origin']})")

    step("6. FR tries to pass the data on to the United States without asking DE")
    refused(
        lambda: ledger.record_transfer(
            {
                "sender": OFAC,
                "recipient": {"party": "US", "authority": "US/FBI"},
                "legal_basis": "treaty:FR-US MLAT 1998",
                "purpose": PURPOSE,
                "data_categories": ["traffic"],
                "dataset_sha256": _digest("FR-OFAC extract for the FBI"),
                "parent_transfer_id": first["id"],
            }
        )
    )

    step("7. INTERPOL wants to pass the data on to Brazil: DE must authorize, not FR")
    to_brazil = {
        "parent_transfer_id": to_interpol["id"],
        "requested_by": IPSG,
        "recipient": {"party": "BR", "authority": "BR/PF"},
        "purpose": PURPOSE,
        "data_categories": ["traffic"],
        "justification": "the traffic leads to servers hosted in Brazil",
    }
    brazil_request = ledger.request_authorization(to_brazil)
    say(f"   request {brazil_request['id']}: origin {brazil_request['origin']} decides")
    refused(lambda: ledger.decide(brazil_request["id"], {"decision": "granted", "decided_by": OFAC}))
    # DE decides in writing by signature this time: it registers its
    # decision key once, and signs the canonical decision document.
    de_key = Signer.generate("bfj.bund.example/decisions")
    ledger.register_party_key("DE", de_key.vkey(), registered_by=BMJ)
    decision = {"decision": "granted", "decided_by": BMJ, "conditions": {"max_transfers": 3}}
    message = signed_decision_bytes(brazil_request["id"], "DE", DecisionDraft.parse(decision))
    decision["signature"] = {
        "key": f"{de_key.name}+{de_key.key_id:08x}",
        "value": base64.b64encode(de_key.sign_raw(message)).decode(),
    }
    brazil_grant = ledger.decide(brazil_request["id"], decision)
    say(f"   DE granted, signing the decision with its registered key {decision['signature']['key']}")
    to_br = {
        "sender": IPSG,
        "recipient": {"party": "BR", "authority": "BR/PF"},
        "legal_basis": "art47",
        "purpose": PURPOSE,
        "data_categories": ["traffic"],
        "dataset_sha256": _digest("INTERPOL notice to BR, part 1"),
        "parent_transfer_id": to_interpol["id"],
        "authorization_id": brazil_grant["id"],
    }
    say("   The data carry H2 (no dissemination without the provider's permission): FR sent them to")
    say("   INTERPOL, so FR must consent too, besides DE's authorization.")
    refused(lambda: ledger.record_transfer(to_br))
    h2_consent = ledger.request_consent({
        "transfer_id": to_interpol["id"], "proceeding": PURPOSE["proceeding"], "requested_by": IPSG,
        "recipient": {"party": "BR", "authority": "BR/PF"}, "reasons": "the traffic leads to servers in Brazil",
    })
    h2_consent = ledger.decide_consent(h2_consent["id"], {"decision": "granted", "decided_by": OFAC})
    say(f"   INTERPOL asked FR; FR consented at leaf {h2_consent['decision']['leaf_index']}")
    first_to_brazil = ledger.record_transfer({**to_br, "consent_id": h2_consent["id"]})
    say(f"   INTERPOL transferred to BR at leaf {first_to_brazil['leaf_index']} "
        f"(depth {first_to_brazil['depth']}, origin {first_to_brazil['origin']}, "
        f"handling {','.join(first_to_brazil['handling']['use_restrictions'])} inherited)")

    step("8. INTERPOL asks to pass the data to Canada; DE refuses, with reasons (art. 40 §25)")
    canada = ledger.request_authorization({**to_brazil, "recipient": {"party": "CA", "authority": "CA/RCMP"},
                                           "justification": "possible victims in Canada"})
    refusal = ledger.decide(
        canada["id"],
        {
            "decision": "refused",
            "decided_by": BMJ,
            "reasons": "no proceeding in Canada is named; the specialty rule (art. 40 §19) applies",
        },
    )
    say(f"   {refusal['status']}: {refusal['decision']['reasons']}")

    step("9. DE revokes the Brazil grant; INTERPOL's next transfer under it is refused")
    revoked = ledger.revoke(
        brazil_grant["id"],
        {"revoked_by": BMJ, "reasons": "the Brazilian proceeding was closed"},
    )
    say(f"   authorization {revoked['id']} is now {revoked['status']}")
    refused(
        lambda: ledger.record_transfer(
            {
                "sender": IPSG,
                "recipient": {"party": "BR", "authority": "BR/PF"},
                "legal_basis": "art47",
                "purpose": PURPOSE,
                "data_categories": ["traffic"],
                "dataset_sha256": _digest("INTERPOL notice to BR, part 2"),
                "parent_transfer_id": to_interpol["id"],
                "authorization_id": brazil_grant["id"],
            }
        )
    )

    step("10. FR uses DE's data (art. 40 §19): in the stated proceeding, and in another with DE's consent")
    used = ledger.record_use(first["id"], {
        "proceeding": PURPOSE["proceeding"], "kind": "evidence-in-proceedings", "used_by": OFAC,
        "description": "subscriber records produced at the hearing"})
    say(f"   use in {used['proceeding']} recorded at leaf {used['leaf_index']}")
    other_use = {"proceeding": "FR-PNC-2026-0999", "kind": "investigation", "used_by": OFAC,
                 "description": "the same account appears in a fraud case"}
    refused(lambda: ledger.record_use(first["id"], other_use))
    consent = ledger.request_consent({"transfer_id": first["id"], "proceeding": "FR-PNC-2026-0999",
                                      "requested_by": OFAC, "reasons": "the same account appears in a fraud case"})
    consent = ledger.decide_consent(consent["id"], {"decision": "granted", "decided_by": BMJ,
                                                    "conditions": ["no disclosure to the press"]})
    say(f"   FR asked DE, the requested Party; DE consented, on condition: {consent['decision']['conditions'][0]}")
    used = ledger.record_use(first["id"], {**other_use, "consent_id": consent["id"]})
    say(f"   use in {used['proceeding']} under consent {consent['id']} at leaf {used['leaf_index']}")

    step("11. Exculpatory information for a suspect in another case: notice, not consent (art. 40 §19)")
    cleared = ledger.record_use(first["id"], {
        "proceeding": "FR-PNC-2026-1107", "kind": "disclosure", "used_by": OFAC, "exculpatory": True,
        "description": "the logs place the suspect elsewhere at the time",
        "notice": {"prior_impossible": "disclosed at a hearing held the same morning"}})
    say(f"   disclosed at leaf {cleared['leaf_index']}; prior notice was impossible, so DE is told after:")
    cleared = ledger.give_use_notice(first["id"], cleared["id"], {"notified_by": OFAC})
    say(f"   notice to DE recorded at leaf {cleared['notice']['leaf_index']}")

    step("12. Where did DE's data go? The lineage of the last transfer")
    lineage = ledger.get_transfer(first_to_brazil["id"])
    hops = [lineage, *lineage["ancestors"]]
    for hop in reversed(hops):
        say(f"   {hop['sender']['party']:>8} -> {hop['recipient']['party']:<8} "
            f"leaf {hop['leaf_index']:<4} {hop['legal_basis']:<6} {','.join(hop['data_categories'])}")

    _preservation(ledger, say, step, refused)

    step("13. A signed checkpoint of the ledger (C2SP tlog-checkpoint)")
    stored = sign_current_checkpoint(ledger.store, signer)
    for line in stored.note.rstrip("\n").split("\n"):
        say(f"   {line}")
    certificate = None
    if ledger.event_format == 2 and ledger.sealer is not None:
        certificate = _erasure(ledger, signer, say, step, refused, first["id"])
    else:
        say("")
        say("(This ledger is in event format 1: its personal data are inside its leaves and cannot be erased.)")
    _referral(ledger, say, step, 19 if certificate is not None else 14)
    _control(ledger, say, step, refused, 20 if certificate is not None else 15)
    say("")
    say("Check it all with: transfer-ledger verify")
    if certificate is not None:
        say(f"and the certificate with: transfer-ledger verify-certificate {certificate} "
            f"--vkey {certificate.parent / VKEY_FILE}")


def _preservation(ledger: TransferLedger, say: Say, step: Callable[[str], None],
                  refused: Callable[[Callable[[], Any]], None]) -> None:
    """Steps 10a and 10b: DE asks FR to preserve stored data (art. 42) and extends the period."""
    request = {
        "requesting_authority": BKA, "requested_party": "FR", "offence": "illegal access (art. 7), ransomware",
        "facts": "hospital servers encrypted; the ransom note names a mailbox hosted in France",
        "data": {"description": "the mailbox named in the ransom note", "data_categories": ["content", "traffic"]},
        "relation_to_offence": "the ransom negotiations go through it", "custodian": "a French mail provider",
        "necessity": "inactive mailboxes are deleted after 30 days", "mla_request_intended": True,
        "confidential": True, "no_user_notice": True, "period_days": 60,
    }
    step("12a. DE asks FR to preserve the mailbox (art. 42 §3) for 60 days; 30 days is refused (§8)")
    refused(lambda: ledger.request_preservation({**request, "period_days": 30}))
    made = ledger.request_preservation(request)
    say(f"   preservation {made['id']} at leaf {made['leaf_index']}: {made['status']}, {made['days_left']} days left")
    step("12b. Before it expires, DE extends it by 30 days (§9); FR may not release it while it runs")
    extended = ledger.extend_preservation(made["id"], {
        "extended_by": BKA, "period_days": 30, "reasons": "the request for assistance awaits translation"})
    say(f"   extended at leaf {extended['extensions'][-1]['leaf_index']}: {extended['days_left']} days left, "
        f"until {extended['expires_at'][:10]}")
    refused(lambda: ledger.release_preservation(made["id"], {"released_by": OFAC, "reasons": "not needed"}))


def _referral(ledger: TransferLedger, say: Say, step: Callable[[str], None], number: int) -> None:
    step(f"{number}. A third-country referral: DE finds that FR's request leads to NL (art. 43 §1, art. 40 §4)")
    made = ledger.record_referral({
        "request_reference": "FR-MLA-2026-112", "requesting_party": "FR", "third_party": "NL",
        "finding": "the IP addresses of the request belong to a hosting provider in NL",
        "transfer": {"sender": BKA, "recipient": {"party": "NL", "authority": "NL/NHTCU"}, "legal_basis": "art40-4",
                     "purpose": {"proceeding": "DE-BKA-2026-0311"}, "data_categories": ["traffic"],
                     "dataset_sha256": _digest("DE-BKA IP addresses for NL")},
        "notice": {"notified_by": BKA, "recipient": {"party": "FR", "authority": "FR/OFAC"},
                   "text": "address the request for the subscriber data to NL"},
    })
    say(f"   DE informed NL at leaf {made['transfer']['leaf_index']} (its own finding: origin {made['origin']}) "
        f"and told FR to turn to NL at leaf {made['leaf_index']}, in one commit: referral {made['id']}")


def _control(ledger: TransferLedger, say: Say, step: Callable[[str], None],
             refused: Callable[[Callable[[], Any]], None], number: int) -> None:
    """The last steps: a planned and an unplanned internal control check of DE's unit (Order 949 annex 3)."""
    today = ledger.clock().date()
    head = {"party": "DE", "authority": "DE/BKA", "officer": "Direktor P. Schulz"}
    chair = {"party": "DE", "authority": "DE/BKA", "officer": "Oberregierungsrat J. Braun"}
    step(f"{number}a. The head of the BKA approves its yearly plan of checks (Order 949 annex 3 §5-§7)")
    plan = ledger.approve_control_plan({
        "party": "DE", "unit": "DE/BKA", "year": today.year, "approved_by": head,
        "checks": [{"objects": ["transfers to FR and their onward transfers"], "period_from": f"{today.year}-01-01",
                    "period_to": today.isoformat(), "starts_on": today.isoformat(),
                    "ends_on": (today + timedelta(days=14)).isoformat(), "responsible": [chair["officer"]]}],
    })
    say(f"   plan {plan['id']} for {plan['year']} at leaf {plan['leaf_index']}: {len(plan['checks'])} planned check")
    step(f"{number}b. The planned check of the first transfers: their officer may not take part (§4)")
    checked = [0, 1]
    refused(lambda: ledger.open_control_check({
        "party": "DE", "unit": "DE/BKA", "plan_id": plan["id"], "check_number": 1, "decided_by": head,
        "participants": [BKA["officer"]], "events": checked}))
    check = ledger.open_control_check({
        "party": "DE", "unit": "DE/BKA", "plan_id": plan["id"], "check_number": 1, "decided_by": head,
        "participants": [chair["officer"]], "events": checked})
    done = ledger.conclude_control_check(check["id"], {
        "concluded_by": chair, "conclusion": "the transfers examined were lawful; one notice came late",
        "violations": [{"description": "the notice to DE was recorded late", "leaf_index": 1}],
        "measures": [{"description": "remind the unit of the notice deadline",
                      "deadline": (today + timedelta(days=30)).isoformat(), "responsible": chair["officer"]}],
    })
    say(f"   check {check['id']} at leaf {check['leaf_index']} on the tree of {check['tree_size']} leaves; "
        f"concluded at leaf {done['conclusion']['leaf_index']}, measure m1 due {done['measures'][0]['deadline']}")
    step(f"{number}c. An unplanned check on a data subject's complaint (§8), organized within five working "
         "days (§9)")
    ground = {"kind": "complaint", "reference": "DE-BFDI-0042", "received_on": today.isoformat(),
              "summary": "a data subject asks which States received her data"}
    unplanned = {"party": "DE", "unit": "DE/BKA", "decided_by": head, "ground": ground,
                 "ends_on": (today + timedelta(days=20)).isoformat(), "objects": ["the first transfer"],
                 "participants": [chair["officer"]], "events": [0]}
    refused(lambda: ledger.open_control_check({
        **unplanned, "ground": {**ground, "received_on": (today - timedelta(days=30)).isoformat()}}))
    opened = ledger.open_control_check(unplanned)
    concluded = ledger.conclude_control_check(opened["id"], {
        "concluded_by": chair, "conclusion": "the complainant's data went to FR and INTERPOL under DE's grants"})
    report = concluded["conclusion"]["reported_to"]
    completed = ledger.complete_control_measure(check["id"], "m1", {"completed_by": chair})
    say(f"   check {opened['id']} concluded at leaf {concluded['conclusion']['leaf_index']}, reported to "
        f"{report['officer']} ({report['authority']}); the planned check's measure completed at leaf "
        f"{completed['measures'][0]['completion']['leaf_index']}")


def _erasure(ledger: TransferLedger, signer: Signer, say: Say, step: Callable[[str], None],
             refused: Callable[[Callable[[], Any]], None], transfer_id: str) -> Path:
    """Steps 12 to 16: a hold, the erasure of the first transfer's subject data, how it reads, the
    notices and an acknowledgement, and a certificate (written into the data dir, verified)."""
    from ledger.audit.certificates import certify_erasure, verify_certificate
    from ledger.storage.cosignatures import CosignatureStore
    from ledger.storage.sql import SqlAccess

    erasure = {"erased_by": OFAC, "ground": "purpose-achieved",
               "reasons": "proceeding FR-PNC-2026-0417 closed by final judgment"}

    step("14. FR places an evidence hold on DE's data (LED art. 16(3)); an erasure is refused while it stands")
    held = ledger.restrict_processing(transfer_id, {"by": OFAC, "reasons": "evidence for the appeal"})
    say(f"   hold placed at leaf {held['restriction']['leaf_index']}")
    refused(lambda: ledger.erase_personal_data(transfer_id, erasure))
    ledger.restrict_processing(transfer_id, {"by": OFAC, "reasons": "the appeal was decided"}, lift=True)
    say(f"   hold lifted at leaf {ledger.store.head().size - 1}: the data may be erased again")

    step("15. The proceeding is closed: FR erases the subject data of DE's transfer (Order 949 §15)")
    erased = ledger.erase_personal_data(transfer_id, erasure)
    say(f"   erased at leaf {erased['erasure']['leaf_index']}: data key {erased['erasure']['key_ids'][0]} "
        f"destroyed; every leaf and checkpoint stays valid")

    step("16. The transfer now reads with its subject data erased; who acted stays (LED art. 25)")
    read = ledger.get_transfer(transfer_id)
    for field in ("subjects", "justification"):
        say(f"   {field}: erased at leaf {read[field]['erased']['leaf_index']}, "
            f"{read[field]['commitment'][:27]}... stays in the leaf")
    say(f"   sender.officer: {read['sender']['officer']}")

    step("17. The Parties the data went on to are told; INTERPOL acknowledges")
    notices = [n for n in ledger.list_notices(party=None, limit=500)[0] if n["transfer_id"] == transfer_id]
    for notice in notices:
        say(f"   notice {notice['id']} to {notice['party']}")
    to_interpol = next(n for n in notices if n["party"] == "INTERPOL")
    done = ledger.acknowledge_notice(to_interpol["id"], {"acknowledged_by": IPSG})
    say(f"   INTERPOL acknowledged at leaf {done['acknowledgement']['leaf_index']}; "
        f"{sum(1 for n in notices if n['party'] != 'INTERPOL')} notice(s) still unacknowledged")

    step("18. A certificate of the erasure, checked offline with the ledger's verifier key")
    doc = certify_erasure(ledger, transfer_id, CosignatureStore(SqlAccess(ledger.recorder)),
                          lambda: sign_current_checkpoint(ledger.store, signer))
    path = Path(ledger.env["DATA_KEYS_DIR"]).parent / f"erasure-certificate-{transfer_id}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    report = verify_certificate(doc, signer.verifier())
    say(f"   written to {path}")
    say(f"   OK: erasure at leaf {report.leaf_index} in the signed tree of {report.tree_size} leaves, "
        f"{report.commitments} commitment(s) erased")
    say(f"   {doc['witnessing'].split('. ', 1)[0]}.")
    return path
