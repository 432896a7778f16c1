"""Identity records: raw key/value data from any source mapped onto canonical, normalised fields.

Normalisation removes the differences that carry no evidence (case, accents, punctuation, the
spelling of a street type, the format of a date or phone number) so that the comparisons only
see the differences that do. A value that cannot be normalised (an impossible date, a phone
number that is not one, text without an ``@`` as an e-mail) is omitted: a missing value gives
no evidence either way, a wrong one would give false evidence.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import phonenumbers

__all__ = ["IDENTITY_FIELDS", "IdentityRecord", "normalise"]

IDENTITY_FIELDS: Final = (
    "given_name",
    "surname",
    "birth_date",
    "email",
    "phone",
    "street_number",
    "address",
    "address_2",
    "locality",
    "postcode",
    "state",
    "country",
    "national_id",
)

_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys(
            ("given_name", "first_name", "firstname", "forename", "given"), "given_name"
        ),
        **dict.fromkeys(("surname", "last_name", "lastname", "family_name"), "surname"),
        **dict.fromkeys(("birth_date", "date_of_birth", "dob", "birthdate"), "birth_date"),
        **dict.fromkeys(("email", "email_address", "e_mail"), "email"),
        **dict.fromkeys(("phone", "telephone", "mobile", "phone_number", "tel"), "phone"),
        **dict.fromkeys(("street_number", "house_number"), "street_number"),
        **dict.fromkeys(
            ("address", "address_1", "address1", "street", "address_line1", "address_line_1"),
            "address",
        ),
        **dict.fromkeys(("address_2", "address2", "address_line2", "address_line_2"), "address_2"),
        **dict.fromkeys(("locality", "suburb", "city", "town"), "locality"),
        **dict.fromkeys(("postcode", "zip", "zip_code", "zipcode", "postal_code"), "postcode"),
        **dict.fromkeys(("state", "region", "province"), "state"),
        **dict.fromkeys(("country", "country_code"), "country"),
        **dict.fromkeys(
            ("national_id", "soc_sec_id", "ssn", "social_security_number"), "national_id"
        ),
    }
)

_STREET_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys(("st", "str", "strt"), "street"),
        **dict.fromkeys(("rd",), "road"),
        **dict.fromkeys(("ave", "av", "avn"), "avenue"),
        **dict.fromkeys(("cres", "cresc", "cr", "crs"), "crescent"),
        **dict.fromkeys(("pl", "plc"), "place"),
        **dict.fromkeys(("ct", "crt"), "court"),
        **dict.fromkeys(("dr", "drv"), "drive"),
        **dict.fromkeys(("ln",), "lane"),
        **dict.fromkeys(("blvd", "bvd"), "boulevard"),
        **dict.fromkeys(("hwy",), "highway"),
        **dict.fromkeys(("pde",), "parade"),
        **dict.fromkeys(("tce", "terr"), "terrace"),
        **dict.fromkeys(("cct", "circ"), "circuit"),
        **dict.fromkeys(("cl",), "close"),
        **dict.fromkeys(("sq",), "square"),
        **dict.fromkeys(("gr", "gve"), "grove"),
        **dict.fromkeys(("esp",), "esplanade"),
        **dict.fromkeys(("pkwy",), "parkway"),
        **dict.fromkeys(("wy",), "way"),
    }
)

# Before another word "st" and "dr" usually mean saint and doctor ("12 st kilda rd").
_ONLY_LAST: Final = frozenset({"st", "dr"})

_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_DATE_FORMATS: Final = (
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})"),
)
_CAMEL_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS: Final = re.compile(r"[\s\-.]+")
_JOINING: Final = re.compile(r"['\u2019.]")
_NOT_WORD: Final = re.compile(r"[^\w\s]|_")
_NOT_ALNUM: Final = re.compile(r"[^0-9A-Za-z]")


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One source record about a person, reduced to its normalised identity fields.

    Attributes:
        source: Where the record comes from (a system or file name).
        record_id: The record's id in that source.
        fields: Canonical field name (one of :data:`IDENTITY_FIELDS`) to normalised value, for
            present values only: a key that is absent means the value is unknown.
    """

    source: str
    record_id: str
    fields: Mapping[str, str] = field(hash=False)

    def get(self, name: str) -> str | None:
        """The normalised value of field ``name``, or ``None`` when it is missing."""
        return self.fields.get(name)


def normalise(
    raw: Mapping[str, object],
    *,
    source: str,
    record_id: str,
    default_region: str | None = None,
) -> IdentityRecord:
    """Map a raw record onto canonical identity fields and normalise each value.

    Keys are matched case-insensitively, with spaces, hyphens, dots and camel-case humps read
    as underscores, against common aliases (``first_name``, ``dob``, ``suburb``, ``zip``,
    ``soc_sec_id``...). A single ``name`` is split into given name and surname
    (``"Smith, Ann"`` or ``"Ann Smith"``) unless those are given separately; when two keys
    name one field, the first valid value counts.
    Unknown keys are ignored; ``None`` and empty values are omitted, dates are read as ISO
    dates and other non-string values with ``str()``.

    Args:
        raw: The source record.
        source: Where it comes from.
        record_id: Its id in that source.
        default_region: ISO 3166 country code (``"GB"``) for phone numbers written without
            an international prefix; without it such numbers are omitted.

    Returns:
        The record with only the values that normalised to something valid.
    """
    texts: dict[str, list[str]] = {}
    full_name: str | None = None
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, datetime.date):
            text = value.isoformat()[:10]
        else:
            text = (value if isinstance(value, str) else str(value)).strip()
        if not text:
            continue
        canonical = _key(str(key))
        if canonical in {"name", "full_name", "fullname"}:
            full_name = text
        elif (target := _ALIASES.get(canonical)) is not None:
            texts.setdefault(target, []).append(text)
    if full_name is not None and "given_name" not in texts and "surname" not in texts:
        for name, part in _split_name(full_name).items():
            texts[name] = [part]
    fields: dict[str, str] = {}
    for name, candidates in texts.items():
        # With two keys for one field (phone and mobile), the first valid value counts.
        normaliser = _normaliser(name, default_region)
        for text in candidates:
            if normalised := normaliser(text):
                fields[name] = normalised
                break
    ordered = {name: fields[name] for name in IDENTITY_FIELDS if name in fields}
    return IdentityRecord(source=source, record_id=record_id, fields=MappingProxyType(ordered))


def _key(raw: str) -> str:
    # "dateOfBirth", "Date of Birth" and "date-of-birth" all name date_of_birth.
    spaced = _CAMEL_HUMP.sub("_", raw.strip())
    return _SEPARATORS.sub("_", spaced.casefold())


def _normaliser(name: str, default_region: str | None) -> Callable[[str], str | None]:
    if name in {"given_name", "surname", "locality", "state", "country"}:
        return _name
    if name in {"address", "address_2"}:
        return _address
    if name == "birth_date":
        return _date
    if name == "email":
        return _email
    if name == "phone":
        return lambda text: _phone(text, default_region)
    if name == "street_number":
        return lambda text: _NOT_ALNUM.sub("", text).casefold()
    return lambda text: _NOT_ALNUM.sub("", _fold(text)).upper()


def _split_name(text: str) -> dict[str, str]:
    if "," in text:
        surname, _, given = text.partition(",")
        return {"given_name": given.strip(), "surname": surname.strip()}
    words = text.split()
    if len(words) == 1:
        return {"surname": words[0]}
    return {"given_name": " ".join(words[:-1]), "surname": words[-1]}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _name(text: str) -> str:
    # Apostrophes and dots join ("o'brien", "n.s.w."); hyphens and the rest separate words.
    folded = _JOINING.sub("", _fold(text))
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def _address(text: str) -> str:
    words = _name(text).split()
    last = len(words) - 1
    return " ".join(
        word if word in _ONLY_LAST and index < last else _STREET_TYPES.get(word, word)
        for index, word in enumerate(words)
    )


def _date(text: str) -> str | None:
    for pattern in _DATE_FORMATS:
        if (match := pattern.fullmatch(text)) is not None:
            try:
                day = datetime.date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
            return f"{day.year:04d}{day.month:02d}{day.day:02d}"
    return None


def _email(text: str) -> str | None:
    address = text.strip().lower()
    return address if _EMAIL.fullmatch(address) else None


def _phone(text: str, default_region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
