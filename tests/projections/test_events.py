"""The read models' view of stored events (projections/events.py) agrees with the domain's events.

The read models decode only the fields they use, with msgspec, for speed; the fields
themselves are written once, on the domain's events (domain/model.py). These tests
hold the two together: a field renamed or retyped in the domain fails here, not in
an auditor's findings.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import msgspec
import pytest

from domain.control import ControlCheck, ControlPlan
from domain.model import Authorization, ConsentRequest, PartyPolicy, Transfer
from domain.preservation import Preservation
from domain.referral import Referral
from projections import events
from tests.support.builders import record

DOMAIN_EVENTS = {
    cls.TOPIC: cls
    for aggregate in (Transfer, Authorization, ConsentRequest, PartyPolicy, Preservation, Referral, ControlPlan,
                      ControlCheck)
    for cls in vars(aggregate).values()
    if isinstance(cls, type) and hasattr(cls, "TOPIC") and ":v" in cls.TOPIC
}
DECODED = sorted(events.KNOWN_TOPICS)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = tuple(arg for arg in get_args(annotation) if arg is not type(None))
        return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
    return annotation


def _struct_of(topic: str) -> type[msgspec.Struct]:
    decoder = events._DECODERS[topic]
    kind: type[msgspec.Struct] = decoder.type
    return kind


def test_every_decoded_topic_is_a_domain_event() -> None:
    assert set(DECODED) <= set(DOMAIN_EVENTS)
    assert {Transfer.Recorded.TOPIC, Authorization.Requested.TOPIC, Authorization.Granted.TOPIC} <= set(DECODED)


@pytest.mark.parametrize("topic", DECODED)
def test_the_read_models_decode_only_fields_the_event_has(topic: str) -> None:
    event_fields = get_type_hints(DOMAIN_EVENTS[topic])
    struct = _struct_of(topic)
    missing = [name for name in struct.__struct_fields__ if name not in event_fields]
    assert missing == [], f"{struct.__name__} decodes fields {topic} does not have"


@pytest.mark.parametrize("topic", DECODED)
def test_a_plain_field_is_decoded_as_the_event_stores_it(topic: str) -> None:
    event_fields = get_type_hints(DOMAIN_EVENTS[topic])
    struct = _struct_of(topic)
    hints = get_type_hints(struct)
    for name in struct.__struct_fields__:
        stored, decoded = _without_none(event_fields[name]), _without_none(hints[name])
        if get_origin(stored) is list and get_origin(get_args(stored)[0]) is dict:
            # a list of objects (a plan's checks, a conclusion's measures): of structs or of dicts
            assert get_origin(decoded) is list, name
            item = get_args(decoded)[0]
            assert get_origin(item) is dict or issubclass(item, msgspec.Struct), name
        elif stored in (str, int, bool) or get_origin(stored) is list:
            assert decoded == stored, f"{struct.__name__}.{name}: {decoded} but {topic} stores {stored}"
        elif get_origin(stored) is dict:
            # an object of the event (an actor, a purpose): a struct or a dict of it
            assert decoded is Any or get_origin(decoded) is dict or issubclass(decoded, msgspec.Struct), name


def test_a_recorded_transfer_decodes_with_the_values_it_was_recorded_with() -> None:
    transfer = record("DE", "FR", retention_until="2027-03-01", item_count=3)
    state = msgspec.json.encode(transfer.data)
    decoded = msgspec.json.decode(state, type=events.TransferRecordedState)
    assert (decoded.sender.party, decoded.recipient.party, decoded.origin) == ("DE", "FR", "DE")
    assert (decoded.retention_until, decoded.item_count, decoded.depth) == ("2027-03-01", 3, 0)
    assert decoded.data_categories == transfer.data["data_categories"]
