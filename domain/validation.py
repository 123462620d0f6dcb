"""One validation model: the domain's values are pydantic models, checked once.

Every input value of a command is a frozen pydantic model (or an ``Annotated``
type) defined in ``domain/``. The HTTP API uses these very models as its
request schemas (``api/schemas.py`` only renames them and adds examples), so a
request is validated once, by pydantic, with the domain's own checks; a
caller in Python (the CLI, the demo, tests) passes a dict and gets the same
checks through :meth:`Value.parse`.

A check of the domain raises a :class:`~pydantic_core.PydanticCustomError`
whose *type* is the rule's stable name (``unknown-party``, ``malformed-date``),
so the rule survives pydantic and reaches the RFC 9457 problem unchanged. Its
message names the field with :data:`FIELD`, which :func:`rule_detail` replaces
by the dotted path of the error's location (``sender.party``), known only once
pydantic has placed the error.

pydantic's own errors (a wrong JSON type, a string too long, a field missing
or unknown) keep pydantic's type and message: over HTTP they are
``invalid-input`` problems listing every such error, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from domain.errors import InvalidInput

T = TypeVar("T")

#: Where a rule's message names its field; replaced by the error's dotted location.
FIELD = "\x1f"
#: The context key of a rule error that carries the values the rule refused.
_VALUES = "__rule_values"


def rule_error(error: InvalidInput) -> PydanticCustomError:
    """``error``, raised by a domain check called with ``field=FIELD``, as pydantic carries it."""
    return refusal(error.rule, error.detail, error.values)


def refusal(rule: str, message: str, values: dict[str, Any] | None = None) -> PydanticCustomError:
    """A rule's refusal inside a validator; ``message`` names the field with :data:`FIELD`."""
    return PydanticCustomError(rule, message, {_VALUES: values or None})


def checked(check: Callable[[Any, str], T]) -> Callable[[Any], T]:
    """A pydantic validator made of a domain check ``check(value, field)``."""

    def validate(value: Any) -> T:
        try:
            return check(value, FIELD)
        except InvalidInput as error:
            raise rule_error(error) from None

    validate.__name__ = getattr(check, "__name__", "validate")
    return validate


def is_rule_error(error: ErrorDetails | dict[str, Any]) -> bool:
    """Whether a pydantic error is a domain rule's (not a JSON type or shape error)."""
    return _VALUES in (error.get("ctx") or {})


def dotted(loc: Sequence[int | str]) -> str:
    """``("sender", "party")`` -> ``sender.party``; ``("subjects", 3)`` -> ``subjects[3]``."""
    out = ""
    for part in loc:
        text = str(part)
        out += f"[{text}]" if isinstance(part, int) or text.isdigit() else (f".{text}" if out else text)
    return out


def rule_detail(error: ErrorDetails | dict[str, Any], field: str) -> str:
    """The message of a rule error, naming ``field``."""
    return str(error.get("msg", "")).replace(FIELD, field)


def rule_values(error: ErrorDetails | dict[str, Any]) -> dict[str, Any] | None:
    values = (error.get("ctx") or {}).get(_VALUES)
    return dict(values) if values else None


@dataclass(frozen=True)
class ShapeRule:
    """``Annotated`` metadata: the rule a Python caller's shape errors (``types``) of a field fall under.

    Over HTTP such an error is ``invalid-input``, as JSON Schema sees it; a Python caller (the
    CLI, the demo) is told the domain's rule, e.g. ``malformed-date`` for a number given as a date.
    """

    rule: str
    types: tuple[str, ...]
    #: The domain's check of the value (``check(value, field)``), whose error a Python caller is told.
    explain: Callable[[Any, str], Any] | None = None


#: Shape errors that mean "nothing given".
_NOTHING = frozenset({"missing", "string_too_short", "too_short"})


def _shape_rules(annotation: Any) -> list[ShapeRule]:
    found = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, ShapeRule)]
    for arg in get_args(annotation):
        found += _shape_rules(arg)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _field_at(model: type[BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    """The field of ``model`` (or of a model inside it) that ``loc`` ends in, if it names one."""
    info = None
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            continue
        info = model.model_fields[part]
        models = _models_in(info.annotation)
        if not models:
            break
        model = models[0]
    return info


def _shape_rule(model: type[BaseModel], loc: Sequence[int | str], error_type: str) -> ShapeRule | None:
    """The :class:`ShapeRule` of the field at ``loc`` in ``model`` for ``error_type``, if any."""
    info = _field_at(model, loc)
    if info is None:
        return None
    rules = [r for r in _shape_rules(info.annotation) + [m for m in info.metadata if isinstance(m, ShapeRule)]
             if error_type in r.types]
    return rules[0] if rules else None


def _nothing_given(model: type[BaseModel] | None, error: ErrorDetails) -> bool:
    """Whether ``error`` says a required field was left out, empty, or ``None``."""
    if error["type"] in _NOTHING:
        return True
    if not error["type"].endswith("_type") or error.get("input", 0) is not None or model is None:
        return False
    info = _field_at(model, error["loc"])
    return info is not None and info.is_required()


def invalid_input(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> InvalidInput:
    """The first error of a validation, as the domain raises it to a Python caller."""
    errors = error.errors()
    first = next((e for e in errors if not is_rule_error(e)), None) or errors[0]
    field = dotted([*([prefix] if prefix else []), *first["loc"]])
    if is_rule_error(first):
        return InvalidInput(rule_detail(first, field), rule=first["type"], field=field or None,
                            values=rule_values(first))
    if _nothing_given(model, first):
        return InvalidInput(f"{field} is required", rule="missing-field", field=field)
    shape = _shape_rule(model, first["loc"], first["type"]) if model is not None else None
    if shape is not None and shape.explain is not None:
        try:
            shape.explain(first.get("input"), field)
        except InvalidInput as explained:
            return explained
    rule = shape.rule if shape is not None else "invalid-field"
    if first["type"] == "extra_forbidden":
        parent = dotted([*([prefix] if prefix else []), *first["loc"][:-1]])
        where = parent or (f"the {model.NOUN}" if model is not None and issubclass(model, Value) else "")
        detail = f"unknown field {str(first['loc'][-1])!r}" + (f" in {where}" if where else "")
        return InvalidInput(detail, rule=rule, field=field or None)
    return InvalidInput(_shape_detail(first, field), rule=rule, field=field or None)


def _shape_detail(error: ErrorDetails, field: str) -> str:
    """pydantic's message of a shape error, naming the field and the value it was given."""
    message = str(error["msg"])
    message = f"{field or 'the value'}{message[len('Input'):]}" if message.startswith("Input ") else message
    return f"{message}, got {_short(error.get('input'))}"


class Value(BaseModel):
    """A domain value: immutable, no unknown fields, no coercion (``"5"`` is not a number)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    #: What the value is, in a Python caller's errors about the whole of it.
    NOUN: ClassVar[str] = "value"

    @classmethod
    def parse(cls, value: Any, field: str | None = None) -> Self:
        """``value`` (a dict, or already a ``cls``) checked; :class:`InvalidInput` names the first error.

        ``field`` is where the value was given (``sender``): errors name their fields under it.
        """
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            what = field or f"the {cls.NOUN}"
            raise InvalidInput(f"{what} must be an object, got {_short(value)}", rule="invalid-field",
                               field=field or None)
        try:
            return cls.model_validate(value)
        except ValidationError as error:
            raise invalid_input(error, field or "", cls) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
