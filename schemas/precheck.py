"""A generated "certainly valid" pre-check in front of each compiled JSON Schema.

Why: the compiled validators (fastjsonschema) raise with the detail the decoder turns
into a reason, and they are the one contract; but their generic code costs several
microseconds per document. So each schema also gets a generated pre-check that can
only conclude "certainly valid": it covers the keywords the input schemas use, each
checked at least as strictly as fastjsonschema checks it (exact types, no floats for
"integer", the validator's own compiled regexes). On anything else it hands the
document to the compiled validator -- and a schema using a keyword it does not know
gets no pre-check at all -- so every rejection and every reason is exactly what the
validator says; valid documents just skip the generic code. tests/schemas/
test_precheck.py checks that claim on random documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

__all__ = ["with_precheck"]


#: Annotations (and "format", which is compiled with use_formats=False): no effect.
_ANNOTATIONS: Final = frozenset({"description", "title", "format", "$comment", "examples"})
_PROPERTY_KEYWORDS: Final = (
    frozenset(
        {
            "type",
            "minLength",
            "maxLength",
            "pattern",
            "enum",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
        }
    )
    | _ANNOTATIONS
)
_SCHEMA_KEYWORDS: Final = (
    frozenset({"$schema", "$id", "type", "properties", "required", "additionalProperties"})
    | _ANNOTATIONS
)
_JSON_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "null"})
#: A pattern whose matches include every non-empty str.isprintable() string (printable
#: strings have no C0 control character nor DEL): the cheap test goes first.
_NO_CONTROLS: Final = "^[^\\u0000-\\u001f\\u007f]+$"
_BOUNDS: Final = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def _property_check(
    name: str,
    prop: dict[str, Any],
    required: bool,
    regexes: Mapping[str, re.Pattern[str]],
    env: dict[str, Any],
) -> list[str] | None:
    """Source lines that fall back to the validator unless ``v`` (the property's value)
    passes; None when the property uses something the pre-check does not cover.
    ``required``: the generated code has already checked that the key is present."""
    if not isinstance(prop, dict) or not set(prop) <= _PROPERTY_KEYWORDS or "type" not in prop:
        return None
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if not types or not all(isinstance(t, str) and t in _JSON_TYPES for t in types):
        return None
    n = len(env)
    allowed: list[str] = []  # one condition per accepted Python type
    if "null" in types:
        enum = prop.get("enum")
        if enum is None or None in enum:
            allowed.append("v is None")
    if "boolean" in types and "enum" not in prop:
        allowed.append("type(v) is bool")
    numeric = [t for t in ("number", "integer") if t in types]
    if numeric and "enum" not in prop:
        cond = "type(v) is int"
        if numeric != ["integer"]:
            cond = "(type(v) is int or type(v) is float)"
        for key, op in _BOUNDS.items():
            if key in prop:
                bound = prop[key]
                if type(bound) not in (int, float):
                    return None
                cond += f" and v {op} {bound!r}"
        allowed.append(cond)
    if "string" in types:
        cond = "type(v) is str"
        if "minLength" in prop or "maxLength" in prop:
            lo, hi = prop.get("minLength", 0), prop.get("maxLength")
            if type(lo) is not int or (hi is not None and type(hi) is not int):
                return None
            cond += f" and {lo} <= len(v)" + (f" <= {hi}" if hi is not None else "")
        if "enum" in prop:
            values = prop["enum"]
            if not isinstance(values, list) or not all(x is None or type(x) is str for x in values):
                return None
            env[f"E{n}"] = frozenset(x for x in values if x is not None)
            cond += f" and v in E{n}"
        if "pattern" in prop:
            regex = regexes.get(prop["pattern"])
            if regex is None:
                return None
            env[f"P{n}"] = regex.search
            test = f"P{n}(v) is not None"
            if prop["pattern"] == _NO_CONTROLS and prop.get("minLength", 0) >= 1:
                test = f"(v.isprintable() or {test})"
            cond += f" and {test}"
        allowed.append(cond)
    if not allowed:
        return None
    env[f"K{n}"] = name
    passes = " or ".join(f"({c})" for c in allowed)
    if required:
        return [f"    v = d[K{n}]", f"    if not ({passes}):", "        return VALIDATE(d)"]
    return [
        f"    v = d.get(K{n}, MISSING)",
        f"    if v is not MISSING and not ({passes}):",
        "        return VALIDATE(d)",
    ]


def with_precheck(schema: dict[str, Any], validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``validate`` behind a generated "certainly valid" pre-check (see above); just
    ``validate`` when the schema uses anything the pre-check does not cover. Called
    with JSON objects only (the decoder checks that first)."""
    if not set(schema) <= _SCHEMA_KEYWORDS or schema.get("type") != "object":
        return validate
    if schema.get("additionalProperties", True) is not True:
        return validate
    props = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list):
        return validate
    if not all(isinstance(k, str) for k in required):
        return validate
    regexes = getattr(validate, "__globals__", {}).get("REGEX_PATTERNS", {})
    env: dict[str, Any] = {"MISSING": object(), "VALIDATE": validate}
    lines = ["def validate_with_precheck(d):"]
    for i, key in enumerate(required):
        env[f"R{i}"] = key
        lines += [f"    if R{i} not in d:", "        return VALIDATE(d)"]
    for name, prop in props.items():
        check = _property_check(name, prop, name in required, regexes, env)
        if check is None:
            return validate
        lines += check
    lines.append("    return d")
    # the source is built above from the schema; its own file name keeps profiles readable
    exec(compile("\n".join(lines), f"<precheck {schema.get('$id', '?')}>", "exec"), env)
    return cast(Callable[[Any], Any], env["validate_with_precheck"])
