"""Check one parsed notiflow.json against the JSON Schema and the format rules.

`DocumentChecker.check` returns every problem, each located at an exact line/column, with a
stable code, a plain-English message that starts with the JSON path, and a hint where one helps.
Positions are computed only when there is a problem, so valid documents stay on the fast path.

Usage: `checker, source = SchemaStore(...).for_document(parsed.value)` then
`checker.check(parsed, file="...")`. Errors come before warnings at the same position.

The document checked is `parsed.value`: the loader passes the document after `${NAME}`
substitution (the payload that is pushed), paired with the file's text for positions. A message
about a substituted string shows the string as written (`"${CT}"`), never its value
(`parsed.raw_strings`). A string whose value is not known (a variable is unset: the loader
reports that) gets no value-based problem (enum, const, pattern, length, and the format rules
located at it): only its type can still be judged.

For anyOf/oneOf failures only the best match (jsonschema's `best_match`) is reported. A missing
required property is dropped when the same object has an unknown key that is a near-miss of it
(`"unit": "day"` is one problem: unknown "unit", did you mean "duration_unit"?). A value of the
wrong type is one problem: the enum, pattern, length or range errors at the same place are dropped
(`"channel_type": null` is "expected a string", not also "not one of ...").

Every problem has a hint. A substituted string gets no "did you mean" (it would say what the
value, maybe a secret, is close to), and no hint that depends on its value.

Schema problem codes (format-rule codes are listed in `notiflows_deploy.rules`):

| code                        | JSON Schema keyword(s)                         | located at                 |
|-----------------------------|------------------------------------------------|----------------------------|
| schema-required             | required (and anyOf of required: body/body@)   | the object missing it      |
| schema-additional-property  | additionalProperties                           | the unknown key            |
| schema-type                 | type                                           | the value                  |
| schema-enum                 | enum, const                                    | the value                  |
| schema-pattern              | pattern                                        | the value                  |
| schema-range                | minimum, maximum, exclusiveMinimum/Maximum     | the value                  |
| schema-length               | minLength, maxLength                           | the value                  |
| schema-count                | minItems, maxItems, minProperties              | the array/object           |
| schema-not-allowed          | a field this step type does not take           | the key                    |
| schema-conflict             | `KEY` and `KEY@` both present (dependentSchemas)| the `KEY@` key            |
| schema-dependency           | dependentRequired (parent_step_handle/branch)  | the key that is present    |
| schema                      | anything else (message from jsonschema)        | the value                  |
| schema-unusable             | the schema has a $ref that cannot be resolved  | line 1, column 1           |
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from .jsonpos import ParsedJson
from .model import Problem, Severity
from .rules import check_rules

Path = tuple[str | int, ...]

# Keys people write for another key; difflib would not always find these.
ALIASES: dict[str, str] = {
    "unit": "duration_unit",
    "step": "steps",
    "type_": "type",
    "parent": "parent_step_handle",
    "parent_handle": "parent_step_handle",
    "branch": "branch_handle",
    "channel": "channel_type",
    "settings_": "settings",
    "meta": "__meta",
    "schema": "$schema",
}
# Singular spellings of enum values (the Management API example writes "unit": "day").
ENUM_ALIASES: dict[str, str] = {"second": "seconds", "minute": "minutes", "hour": "hours", "day": "days"}
PATTERN_HINTS: dict[str, str] = {
    "handle": "use lowercase letters, digits and underscores, starting with a letter or '_' (e.g. email_1)",
}
# What to write when a property is missing (the generic hint says `add "KEY"`).
REQUIRED_HINTS: dict[str, str] = {
    "name": 'add a display name, e.g. "name": "Welcome series"',
    "steps": 'add "steps": [...] with at least a trigger (position 0) and an end step',
    "handle": 'add a handle unique in this notiflow, e.g. "handle": "email_1"',
    "type": "add the step type: trigger, end, channel, condition, wait, digest or throttle",
    "position": 'add its position within its scope: "position": 0, 1, 2, ...',
    "channel_type": "add the channel type: email, sms, in_app, chat, web_push, mobile_push or webhook",
    "settings": "add the settings this step type needs (duration + duration_unit, or branches)",
    "duration": 'add how long, e.g. "duration": 1',
    "duration_unit": 'add the unit: "seconds", "minutes", "hours" or "days"',
    "branches": 'add "branches": 2 to 10 branches, each {"handle": ..., "name": ...}',
    "content_type": "add the content_type this channel takes (see the allowed values in the schema)",
    "data": 'add the template fields: "data": {...}',
    "conditions": 'add "conditions": [...], the tests this group combines',
    "property": 'add what to test, e.g. "property": "data.plan"',
    "operator": 'add the comparison, e.g. "operator": "equal_to"',
    "value": 'this operator compares with a value: add "value": ... (only is_empty and is_not_empty take none)',
}
GENERIC_HINT = "see the description of this field in notiflows_deploy/schema/notiflow.schema.json"
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_@$]*$")
# Codes that judge a string's value: meaningless while the value is unknown (a variable is unset).
VALUE_CODES = frozenset({"schema-enum", "schema-pattern", "schema-length", "schema"})
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


# A value of the wrong type explains these problems at the same place (they are not reported again).
_SHADOWED_BY_TYPE = frozenset({"schema-enum", "schema-pattern", "schema-length", "schema-range", "schema"})


@dataclass(frozen=True)
class _Raw:
    code: str
    path: Path
    message: str
    hint: str = ""
    key: bool = False
    missing: tuple[str, ...] = ()  # for schema-required: the names any of which would satisfy it


def format_path(path: Iterable[str | int]) -> str:
    """`("steps", 2, "settings")` -> `steps[2].settings`; the empty path is `(top level)`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


class DocumentChecker:
    """A compiled validator plus the format rules. Thread-safe: it holds no per-check state."""

    def __init__(self, validator: Validator, *, rules: bool = True) -> None:
        self.validator = validator
        self.rules = rules

    def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]:
        document = parsed.value
        try:
            errors = list(self.validator.iter_errors(document))
        except Unresolvable as exc:  # a downloaded or --schema schema with a $ref we cannot follow
            return [Problem(file, 1, 1, "schema-unusable", f"the schema could not be applied: {exc}",
                            hint="use the bundled schema (remove --schema) or fix the schema's $ref")]
        findings = check_rules(document, raw=parsed.raw_strings) if self.rules else []
        if not errors and not findings:
            return []
        unknown = parsed.unresolved
        raws = _merge(r for error in errors for r in _convert(error, document, parsed.raw_strings))
        problems: set[Problem] = set()
        for raw in raws:
            if raw.path in unknown and raw.code in VALUE_CODES:
                continue
            line, column = parsed.locate(raw.path, key=raw.key)
            problems.add(Problem(file, line, column, raw.code, raw.message, Severity.ERROR, raw.hint))
        for finding in findings:
            if finding.path in unknown:
                continue
            line, column = parsed.locate(finding.path, key=finding.key)
            problems.add(
                Problem(file, line, column, finding.code, finding.message, finding.severity, finding.hint)
            )
        return sorted(problems, key=lambda p: (p.line, p.column, p.severity is not Severity.ERROR, p.code, p.message))

    def is_valid(self, document: Any) -> bool:
        """Schema and rule errors only (warnings do not count)."""
        if not self.validator.is_valid(document):
            return False
        return not any(f.severity is Severity.ERROR for f in check_rules(document)) if self.rules else True


def _merge(raws: Iterable[_Raw]) -> list[_Raw]:
    """Drop a 'missing X' when the same object has an unknown key that is a near-miss of X, and the
    value-judging problems at a place whose type is already wrong."""
    items = list(raws)
    renamed = {
        (r.path[:-1], name)
        for r in items
        if r.code == "schema-additional-property"
        for name in r.missing  # the suggestion, stored in `missing`
    }
    mistyped = {r.path for r in items if r.code == "schema-type"}
    return [
        r
        for r in items
        if not (r.code == "schema-required" and any((r.path, name) in renamed for name in r.missing))
        and not (r.code in _SHADOWED_BY_TYPE and r.path in mistyped)
    ]


def _convert(error: ValidationError, document: Any, raw: Mapping[Path, str]) -> Iterator[_Raw]:
    """The problems one jsonschema error stands for; `raw` holds substituted strings as written."""
    path: Path = tuple(error.absolute_path)
    where = format_path(path)
    validator = str(error.validator)
    value: Any = error.validator_value
    instance: Any = error.instance
    substituted = path in raw

    if validator in ("anyOf", "oneOf"):
        context = list(error.context or [])
        if context and all(c.validator == "required" and not c.relative_path for c in context):
            names = [n for c in context for n in _as_list(c.validator_value)
                     if isinstance(instance, dict) and n not in instance]
            first, *others = names or ["?"]
            alt = " or ".join(json.dumps(n) for n in others)
            yield _Raw(
                "schema-required",
                path,
                f"{where}: missing required property {json.dumps(first)}" + (f" (or {alt})" if alt else ""),
                hint=f'add "{first}": put it inline, or extract it into a file and point at it with "{first}@"'
                if any(n == f"{first}@" for n in others)
                else _required_hint(first, path),
                missing=tuple(names),
            )
            return
        best = best_match([error])
        if best is not None and best is not error:
            yield from _convert(best, document, raw)
            return
    if validator == "required":
        missing = [n for n in value if isinstance(instance, dict) and n not in instance]
        for name in missing:
            yield _Raw("schema-required", path, f"{where}: missing required property {json.dumps(name)}",
                       hint=_required_hint(name, path), missing=(name,))
        return
    if validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = list(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for key in instance:
            if key in known or any(p.search(key) for p in patterns):
                continue
            suggestion = ALIASES.get(key) if ALIASES.get(key) in known else None
            if suggestion is None:
                matches = difflib.get_close_matches(key, [k for k in known if k not in instance], n=1, cutoff=0.6)
                suggestion = matches[0] if matches else None
            hint = (f"did you mean {json.dumps(suggestion)}?" if suggestion
                    else f"remove {json.dumps(key)}; this object takes only the properties listed"
                    if known else f"remove {json.dumps(key)}; this object takes no properties")
            if suggestion == "duration_unit":
                hint += ' (write "duration_unit" with a plural value: seconds, minutes, hours or days)'
            allowed = ", ".join(known)
            yield _Raw(
                "schema-additional-property",
                (*path, key),
                f"{where}: unknown property {json.dumps(key)}" + (f" (allowed: {allowed})" if allowed else ""),
                hint=hint,
                key=True,
                missing=(suggestion,) if suggestion else (),
            )
        return
    if validator == "type":
        expected = [value] if isinstance(value, str) else list(value)
        if expected == ["null"]:
            key = path[-1] if path else "?"
            yield _Raw(
                "schema-not-allowed",
                path,
                f"{where}: only channel steps take {json.dumps(key)}; this is a "
                f"{json.dumps(_step_type(document, path, raw))} step",
                hint=f"remove {json.dumps(key)}",
                key=True,
            )
            return
        if "integer" in expected and isinstance(instance, float) and instance.is_integer():
            yield _Raw(
                "schema-type",
                path,
                f"{where}: must be a whole number like {int(instance)}, not {json.dumps(instance)}",
                hint=f"write {int(instance)} (without a decimal point); the API takes an integer here",
            )
            return
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected if t != "null")
        got = f"the string {_shown(path, instance, raw)}" if substituted else _describe(instance)
        hint = (_SUBSTITUTED_TYPE_HINT if substituted
                else _type_hint(instance, expected) or f"write {wanted} here")
        yield _Raw("schema-type", path, f"{where}: expected {wanted}, got {got}", hint=hint)
        return
    if validator in ("enum", "const"):
        options = [o for o in ([value] if validator == "const" else list(value)) if o is not None]
        options_text = ", ".join(o if isinstance(o, str) else json.dumps(o) for o in options)
        # No near-miss for a substituted value: "did you mean" would say what the value is close to.
        close = None if substituted else _near_miss(instance, [o for o in options if isinstance(o, str)])
        if close:
            hint = f"did you mean {json.dumps(close)}?"
        elif substituted:
            hint = "the value after substitution must be one of the values listed; check the variable's value"
        else:
            hint = "use one of the values listed (they are case-sensitive)"
        yield _Raw("schema-enum", path, f"{where}: {_shown(path, instance, raw)} is not one of {options_text}",
                   hint=hint)
        return
    if validator == "pattern":
        yield _Raw(
            "schema-pattern",
            path,
            f"{where}: {_shown(path, instance, raw)} does not match the pattern {value}",
            hint=PATTERN_HINTS.get(str(path[-1]) if path else "", "") or f"change it to match {value}",
        )
        return
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "is less than the minimum",
            "maximum": "is more than the maximum",
            "exclusiveMinimum": "must be more than",
            "exclusiveMaximum": "must be less than",
        }
        hints = {
            "minimum": f"use a number of at least {value}",
            "maximum": f"use a number of at most {value}",
            "exclusiveMinimum": f"use a number greater than {value}",
            "exclusiveMaximum": f"use a number less than {value}",
        }
        yield _Raw("schema-range", path, f"{where}: {json.dumps(instance)} {words[validator]} {value}",
                   hint=hints[validator])
        return
    if validator in ("minLength", "maxLength"):
        key = str(path[-1]) if path else ""
        if validator == "minLength" and value == 1:
            message = f"{where}: must not be empty"
            hint = (f'write the path of the file holding {key[:-1]}, e.g. "steps/<handle>/{key[:-1]}.txt"'
                    if key.endswith("@") else "write a non-empty value here")
        else:
            bound = "at least" if validator == "minLength" else "at most"
            message = f"{where}: must be {bound} {value} characters long"
            hint = f"{'lengthen' if validator == 'minLength' else 'shorten'} it to {bound} {value} characters"
        yield _Raw("schema-length", path, message, hint=hint)
        return
    if validator == "maxProperties" and value == 0:
        yield _Raw(
            "schema-not-allowed",
            path,
            f"{where}: a {json.dumps(_step_type(document, path, raw))} step takes no settings",
            hint="remove the settings or leave them empty ({})",
            key=True,
        )
        return
    if validator in ("minItems", "maxItems", "minProperties", "maxProperties"):
        count = len(instance) if isinstance(instance, list | dict) else 0
        noun = "item" if isinstance(instance, list) else "property"
        plural = "items" if noun == "item" else "properties"
        bound = "at least" if validator.startswith("min") else "at most"
        verb = "are required" if bound == "at least" else "are allowed"
        yield _Raw(
            "schema-count",
            path,
            f"{where}: has {count} {noun if count == 1 else plural}; {bound} {value} {verb}",
            hint=_count_hint(path, validator, value, plural),
        )
        return
    if validator == "not" and isinstance(value, dict) and list(value) == ["required"] and isinstance(instance, dict):
        # From dependentSchemas {"KEY@": {"not": {"required": ["KEY"]}}}: the pair is KEY and KEY@.
        target = str(value["required"][0]) if value["required"] else ""
        pointer = f"{target}@"
        if target and pointer in instance:
            yield _Raw(
                "schema-conflict",
                (*path, pointer),
                f"{where}: has both {json.dumps(target)} and {json.dumps(pointer)}; keep only one",
                hint=f"{json.dumps(pointer)} points at a file whose text replaces {json.dumps(target)} on push; "
                f"remove the inline {json.dumps(target)} or the pointer",
                key=True,
            )
            return
    if validator == "dependentRequired" and isinstance(instance, dict):
        for present, needed in value.items():
            if present not in instance:
                continue
            for name in needed:
                if name not in instance:
                    yield _Raw(
                        "schema-dependency",
                        (*path, present),
                        f"{where}: {json.dumps(present)} is set but {json.dumps(name)} is missing; "
                        "a step inside a branch needs both parent_step_handle and branch_handle",
                        key=True,
                        hint=f"add {json.dumps(name)} too, or remove {json.dumps(present)} to put the step in "
                        "the root sequence",
                        missing=(name,),
                    )
        return
    if substituted:  # jsonschema's message quotes the value
        yield _Raw("schema", path, f"{where}: {_shown(path, instance, raw)} is not valid here ({validator})",
                   hint=GENERIC_HINT)
        return
    yield _Raw("schema", path, f"{where}: {error.message}", hint=GENERIC_HINT)


_SUBSTITUTED_TYPE_HINT = "a substituted ${NAME} always gives a string; write the value itself here, not a variable"


def _required_hint(name: str, path: Path) -> str:
    if name in ("name", "handle") and len(path) >= 2 and path[-2] == "branches":
        return f'add the branch\'s {name}, e.g. "{name}": "{"Pro plan" if name == "name" else "pro"}"'
    return REQUIRED_HINTS.get(name, f"add {json.dumps(name)}")


def _count_hint(path: Path, validator: str, value: Any, plural: str) -> str:
    key = path[-1] if path else ""
    if key == "branches":
        if validator == "minItems":
            return f"give the condition at least {value} branches, e.g. a default one without conditions"
        return f"keep at most {value} branches; nest another condition in a branch for more cases"
    if validator.startswith("min"):
        return f"add {plural}: at least {value}"
    return f"remove {plural}: at most {value}"


def _shown(path: Path, instance: Any, raw: Mapping[Path, str]) -> str:
    """The value for a message: a substituted string as written, since its value may be a secret."""
    if path in raw:
        return f"{json.dumps(raw[path])} (after substitution)"
    return json.dumps(instance)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _near_miss(instance: Any, options: list[str]) -> str | None:
    """The option the author probably meant: "day" -> "days", "post" -> "POST", "chanel" -> "channel"."""
    if not isinstance(instance, str) or not instance or not options:
        return None
    if len(options) == 1:
        return options[0]
    alias = ENUM_ALIASES.get(instance)
    if alias in options:
        return alias
    folded = {o.lower(): o for o in options}
    if instance.lower() in folded:
        return folded[instance.lower()]
    matches = difflib.get_close_matches(instance.lower(), list(folded), n=1, cutoff=0.6)
    if matches:
        return folded[matches[0]]
    prefixed = [o for o in options if len(o) >= 3 and instance.lower().startswith(o.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def _step_type(document: Any, path: Path, raw: Mapping[Path, str]) -> str:
    """The `type` of the step that contains `path` (as written), or "?"."""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int) and isinstance(document, dict):
        steps = document.get("steps")
        if isinstance(steps, list) and 0 <= path[1] < len(steps) and isinstance(steps[path[1]], dict):
            kind = steps[path[1]].get("type")
            if isinstance(kind, str):
                return raw.get(("steps", path[1], "type"), kind)
    return "?"


def _describe(instance: Any) -> str:
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return f"the boolean {json.dumps(instance)}"
    if isinstance(instance, int | float):
        return f"the number {json.dumps(instance)}"
    if isinstance(instance, str):
        text = instance if len(instance) <= 40 else instance[:37] + "..."
        return f"the string {json.dumps(text)}"
    if isinstance(instance, list):
        return "an array"
    return "an object"


def _type_hint(instance: Any, expected: list[str]) -> str:
    if isinstance(instance, str):
        text = instance.strip()
        if ("integer" in expected or "number" in expected) and re.fullmatch(r"-?\d+(\.\d+)?", text):
            return "write the number without quotes"
        if "boolean" in expected and text in ("true", "false"):
            return "write true/false without quotes"
    if "array" in expected and isinstance(instance, dict):
        return "wrap it in [ ... ]"
    return ""
