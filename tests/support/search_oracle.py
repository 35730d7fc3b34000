"""The search tests' pure-Python oracle: which documents of the corpus a search must
return, and in which order, computed from the documents alone (never from the
database); the corpus is tests/support/search_corpus.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from .search_corpus import BASE64_ENCODINGS, FILTERS

__all__ = ["expected", "searched_text"]


def expected(corpus: Iterable[Mapping[str, Any]], **filters: Any) -> list[str]:
    """Return the lowercase uuids of the documents that match ALL ``filters``, ordered
    by ``created_at`` descending, then uuid descending: what a search must return.

    Filters take the values :meth:`SupabaseStorage.search` takes (``tags`` as a dict or
    a list of ``"key:value"``; dates as aware datetimes or ISO-8601 strings). ``text``
    follows ``websearch_to_tsquery`` for what the tests use: words (AND), ``or``,
    ``-word``, ``"phrases"``, whole e-mail addresses and digit strings; it matches
    when the query matches one searched field (see :func:`searched_text`). Words are
    compared without stemming or stop words, which is exact for the marker words.
    """
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise TypeError(f"the oracle knows no filter {unknown}")
    matches = [_matcher(name, value) for name, value in filters.items()]
    if "analysis_type" in filters or "analysis_vendor" in filters:
        matches.append(_same_analysis(filters.get("analysis_type"), filters.get("analysis_vendor")))
    found = [doc for doc in corpus if all(match(doc) for match in matches)]
    found.sort(key=lambda doc: (_instant(doc["created_at"]), doc["uuid"].lower()), reverse=True)
    return [doc["uuid"].lower() for doc in found]


def searched_text(document: Mapping[str, Any]) -> Iterator[str]:
    """The fields full-text search looks at, one string per field: the subject; each
    party's name, mailto and tel; the body of each text dialog and of each analysis
    whose encoding is not base64 (non-string bodies as JSON text)."""
    yield from _present(document.get("subject"))
    for party in document.get("parties") or ():
        for name in ("name", "mailto", "tel"):
            yield from _present(party.get(name))
    for dialog in document.get("dialog") or ():
        if dialog.get("type") == "text" and dialog.get("encoding") not in BASE64_ENCODINGS:
            yield from _present(_body_text(dialog.get("body")))
    for analysis in document.get("analysis") or ():
        if analysis.get("encoding") not in BASE64_ENCODINGS:
            yield from _present(_body_text(analysis.get("body")))


def _matcher(name: str, value: Any) -> Any:
    """A predicate over one document for one filter (analysis filters: see below)."""
    if name == "text":
        groups = _parse_websearch(value)
        return lambda doc: any(
            _field_matches(groups, _lexemes(field)) for field in searched_text(doc)
        )
    if name == "subject":
        return lambda doc: (
            doc.get("subject") is not None and value.lower() in doc["subject"].lower()
        )
    if name in ("tel", "mailto", "name", "party_uuid"):
        field = "uuid" if name == "party_uuid" else name
        wanted = _party_value(name, value)
        if name == "name":
            return lambda doc: any(
                wanted in _party_value(name, p[field]) for p in _parties(doc, field)
            )
        return lambda doc: any(_party_value(name, p[field]) == wanted for p in _parties(doc, field))
    if name == "tags":
        wanted_tags = (
            {f"{k}:{v}" for k, v in value.items()} if isinstance(value, Mapping) else set(value)
        )
        return lambda doc: wanted_tags <= _tags(doc)
    if name.endswith(("_after", "_before")):
        field = "created_at" if name.startswith("created") else "updated_at"
        bound = _instant(value)
        if name.endswith("_after"):
            return lambda doc: _instant(doc[field]) >= bound
        return lambda doc: _instant(doc[field]) < bound
    if name == "dialog_type":
        return lambda doc: any(d.get("type") == value for d in doc.get("dialog") or ())
    return lambda doc: True  # analysis_type / analysis_vendor: _same_analysis


def _same_analysis(kind: str | None, vendor: str | None) -> Any:
    """Some ONE analysis entry has the type and the vendor (those given)."""
    return lambda doc: any(
        (kind is None or a.get("type") == kind) and (vendor is None or a.get("vendor") == vendor)
        for a in doc.get("analysis") or ()
    )


def _parties(doc: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [p for p in doc.get("parties") or () if p.get(name) is not None]


def _party_value(name: str, value: str) -> str:
    """The normalised form compared for tel (digits), mailto, name and party_uuid."""
    if name == "tel":
        return re.sub(r"[^0-9]", "", value)
    if name == "mailto":
        return re.sub(r"^mailto:", "", value, flags=re.IGNORECASE).lower()
    return value.lower()


def _tags(doc: Mapping[str, Any]) -> set[str]:
    for attachment in doc.get("attachments") or ():
        if attachment.get("type") == "tags":
            return set(json.loads(attachment["body"]))
    return set()


def _instant(value: datetime | str) -> datetime:
    instant = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if instant.tzinfo is None:
        raise ValueError(f"the oracle compares aware datetimes only, got {value!r}")
    return instant


def _present(value: str | None) -> Iterator[str]:
    if value is not None:
        yield value


def _body_text(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    return json.dumps(body)


_EMAIL = re.compile(r"[a-z0-9._+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_WORD = re.compile(r"[^\W_]+")
_QUERY_TOKEN = re.compile(r'-*"[^"]*"?|[^\s"]+')

#: One ``or`` alternative: (negated, lexemes) terms that must all hold in one field.
Group = list[tuple[bool, tuple[str, ...]]]


def _lexemes(text: str) -> list[str]:
    """Lowercase words of ``text`` in order; an e-mail address is one lexeme (as in
    PostgreSQL's parser)."""
    text = text.lower()
    lexemes: list[str] = []
    position = 0
    for match in _EMAIL.finditer(text):
        lexemes += _WORD.findall(text[position : match.start()])
        lexemes.append(match.group())
        position = match.end()
    return lexemes + _WORD.findall(text[position:])


def _parse_websearch(query: str) -> list[Group]:
    """``a b or -c "d e"`` -> [[a, b], [not c, phrase d e]] (AND inside, OR between)."""
    groups: list[Group] = [[]]
    for token in _QUERY_TOKEN.findall(query):
        if token.lower() == "or":
            groups.append([])
            continue
        negated = (len(token) - len(token.lstrip("-"))) % 2 == 1
        lexemes = tuple(_lexemes(token.lstrip("-").strip('"')))
        if lexemes:
            groups[-1].append((negated, lexemes))
    return [group for group in groups if group]


def _field_matches(groups: list[Group], lexemes: list[str]) -> bool:
    return any(
        all(_contains(lexemes, phrase) != negated for negated, phrase in group) for group in groups
    )


def _contains(lexemes: list[str], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(tuple(lexemes[i : i + size]) == phrase for i in range(len(lexemes) - size + 1))
