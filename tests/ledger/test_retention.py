"""``transfer-ledger retention run``: the scheduled destruction of subject data (Order 949 §15)."""

from __future__ import annotations

import json
from contextlib import closing

from ledger.bootstrap import open_ledger
from ledger.config import Settings
from tests.support.api import run_init
from tests.support.builders import actor, transfer
from tests.support.cli import one_line_error, run


def test_retention_erases_what_is_due_and_keeps_what_is_held_or_not_yet_due(settings: Settings) -> None:
    run_init(settings)
    with closing(open_ledger(settings)) as ledger:
        due = ledger.record_transfer(transfer("DE", "FR", subjects=["Due Person"], retention_until="2027-01-31"))
        held = ledger.record_transfer(transfer("DE", "FR", subjects=["Held Person"], retention_until="2027-01-15"))
        later = ledger.record_transfer(transfer("DE", "FR", subjects=["Later"], retention_until="2027-02-01"))
        kept = ledger.record_transfer(transfer("DE", "FR", subjects=["No Period"]))
        ledger.restrict_processing(held["id"], {"by": actor("FR"), "reasons": "appeal"})
    # the last day of a period is still inside it
    dry = json.loads(run("retention", "run", "--dry-run", "--json", "--today", "2027-01-31", settings=settings).stdout)
    assert dry["due"] == [] and dry["held"] == [held["id"]]
    dry = json.loads(run("retention", "run", "--dry-run", "--json", "--today", "2027-02-01", settings=settings).stdout)
    assert (dry["due"], dry["held"], dry["erased"]) == ([due["id"]], [held["id"]], [])
    with closing(open_ledger(settings)) as ledger:
        assert ledger.get_transfer(due["id"])["subjects"] == ["Due Person"]  # a dry run erased nothing
    done = run("retention", "run", "--today", "2027-02-01", settings=settings)
    assert done.stdout.strip() == "1 transfer(s) erased, 1 held, 0 refused (periods judged on 2027-02-01)"
    with closing(open_ledger(settings)) as ledger:
        erased = ledger.get_transfer(due["id"])
        assert erased["subjects"]["erased"]["retention_class"] == "subject-data"
        assert erased["erasure"]["ground"] == "retention-expired"
        assert erased["erasure"]["erased_by"]["party"] == "FR"
        assert ledger.get_transfer(held["id"])["subjects"] == ["Held Person"]
        assert ledger.get_transfer(later["id"])["subjects"] == ["Later"]
        assert ledger.get_transfer(kept["id"])["subjects"] == ["No Period"]
        size = ledger.store.head().size
    again = json.loads(run("retention", "run", "--json", "--today", "2027-02-01", settings=settings).stdout)
    assert again["erased"] == [] and again["due"] == []  # idempotent
    with closing(open_ledger(settings)) as ledger:
        assert ledger.store.head().size == size
    assert run("verify", settings=settings).stdout.startswith("OK: ")


def test_retention_refuses_a_day_that_is_not_a_date(settings: Settings) -> None:
    run_init(settings)
    bad = run("retention", "run", "--today", "31.01.2027", settings=settings, check=2)
    assert "--today must be a date" in one_line_error(bad)
