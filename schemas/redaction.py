"""Personal data out of dead letters: named fields replaced by a digest before writing.

Why: a dead letter copies the rejected input, and the input schemas allow extra fields,
so a producer that sends a name or a phone number upstream would see it land, base64
but readable, on ``dead-letters`` for as long as that topic keeps records. The
``Redactor`` replaces every configured field, at any depth, with
``"redacted:<digest>"`` before the dead letter is written; the original's SHA-256
(``value_sha256``) and size stay, so an operator can still match the record with the
producer's copy, and the digest lets two dead letters be seen to carry the same value.

Field names match without regard to case and to ``_``, ``-`` and spaces
(``firstName``, ``first_name`` and ``FIRST-NAME`` are one name). The digest is
HMAC-SHA256 under ``TIERSTREAM_DEAD_LETTER_REDACT_KEY`` when a key is set — then nobody
without the key can confirm a guess (a phone number has few enough possible values
to try them all) — and a plain SHA-256 otherwise. Either way it is a function of the
value only, so a replay writes the same dead letter.

Everything else keeps its exact value: the value is re-parsed keeping every number's
literal text and every duplicate key, and written back without whitespace, so only
the layout can differ from what the producer sent. A value that is not a JSON object
(not UTF-8, not JSON, a bare string or list) or is larger than the dead-letter limit
cannot be searched for field names, so its bytes are withheld: the record keeps only
``value_size`` and ``value_sha256``, with ``value`` null and ``value_withheld`` true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

#: The default personal fields: names, phone, e-mail, id numbers, address, birth date.
DEFAULT_FIELDS: Final = (
    "name",
    "first_name",
    "last_name",
    "middle_name",
    "full_name",
    "given_name",
    "family_name",
    "surname",
    "customer_name",
    "phone",
    "phone_number",
    "mobile",
    "mobile_number",
    "telephone",
    "email",
    "email_address",
    "id_number",
    "id_card",
    "id_card_number",
    "national_id",
    "passport",
    "passport_number",
    "ssn",
    "tax_id",
    "address",
    "home_address",
    "postal_address",
    "street",
    "birth_date",
    "date_of_birth",
    "dob",
    "birthday",
)
#: Largest value searched for fields (the dead-letter limit); larger ones are withheld.
MAX_REDACT_BYTES: Final = 65536
_SEPARATORS: Final = re.compile(r"[\s_\-]+")


def normalize(name: str) -> str:
    """How field names are compared: lower case, without ``_``, ``-`` and spaces."""
    return _SEPARATORS.sub("", name).lower()


@dataclass(frozen=True)
class _Literal:
    """A JSON number (or NaN/Infinity) kept as the text the producer wrote."""

    text: str


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in order, duplicates kept."""


def parse_exact(text: str) -> Any:
    """JSON with every number kept as its literal text and every object as its
    (key, value) pairs, duplicates included: what redaction rewrites."""
    return json.loads(
        text,
        parse_float=_Literal,
        parse_int=_Literal,
        parse_constant=_Literal,
        object_pairs_hook=_Pairs,
    )


def _dump(value: Any, out: list[str]) -> None:
    if isinstance(value, _Pairs):
        out.append("{")
        for i, (k, v) in enumerate(value):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _dump(v, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _dump(v, out)
        out.append("]")
    elif isinstance(value, _Literal):
        out.append(value.text)
    else:  # str, bool, None
        out.append(json.dumps(value, ensure_ascii=False))


class Redactor:
    """Replaces personal fields in a dead letter's copy of the raw value."""

    def __init__(self, fields: Iterable[str] = DEFAULT_FIELDS, key: bytes | None = None) -> None:
        self.fields = frozenset(normalize(f) for f in fields if f.strip())
        self.key = key or None

    @property
    def enabled(self) -> bool:
        return bool(self.fields)

    def digest(self, value: Any) -> str:
        """``hmac-sha256:<hex>`` (with a key) or ``sha256:<hex>`` of the value's JSON."""
        out: list[str] = []
        _dump(value, out)
        data = "".join(out).encode("utf-8")
        if self.key is not None:
            return "hmac-sha256:" + hmac.new(self.key, data, hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def _walk(self, value: Any, path: str, found: list[str]) -> Any:
        if isinstance(value, _Pairs):
            pairs = _Pairs()
            for k, v in value:
                where = f"{path}.{k}"
                if normalize(k) in self.fields:
                    found.append(where)
                    pairs.append((k, f"redacted:{self.digest(v)}"))
                else:
                    pairs.append((k, self._walk(v, where, found)))
            return pairs
        if isinstance(value, list):
            return [self._walk(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
        return value

    def redact(self, raw: bytes) -> tuple[bytes, list[str]] | None:
        """(the value with personal fields replaced, their JSON paths), or None when
        the value cannot be searched (not a JSON object, too large, or nested too deep
        to walk): withhold it."""
        if len(raw) > MAX_REDACT_BYTES:
            return None
        try:
            doc = parse_exact(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(doc, _Pairs):
            return None
        found: list[str] = []
        try:
            cleaned = self._walk(doc, "$", found)
            out: list[str] = []
            _dump(cleaned, out)
        except RecursionError:  # nested deeper than parsing it was: cannot be searched
            return None
        return "".join(out).encode("utf-8"), found

    def apply(self, record: dict[str, Any], raw: bytes | None) -> dict[str, Any]:
        """The dead-letter record (``schemas.dead_letter.dead_letter_record``) of ``raw``
        with its value redacted. Unchanged when redaction is off, there is no value, or
        the value holds none of the fields (then it is still byte-exact)."""
        if not self.enabled or raw is None:
            return record
        raw = bytes(raw)
        redacted = self.redact(raw)
        if redacted is not None and not redacted[1]:
            return record  # nothing personal by name: kept byte-exact
        out = dict(record)
        out.pop("value_truncated", None)
        out["value_size"] = len(raw)
        out["value_sha256"] = hashlib.sha256(raw).hexdigest()
        if redacted is None:
            out["value"] = None
            out["value_withheld"] = True
        else:
            value, paths = redacted
            out["value"] = base64.b64encode(value).decode("ascii")
            out["value_redacted"] = paths
        return out
