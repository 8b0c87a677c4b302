"""Regex handling shared by all targets.

SMI path regexes are *prefix-anchored*: ``R`` matches a URI when ``^(?:R)``
matches at its start. Every mesh we emit for full-matches instead, so a path
is classified once here and each translator picks the form it can express.
Header value regexes are taken as full-match, the way Envoy (and so OSM, the
reference SMI v1alpha4 implementation) applies them.

Every regex is validated with RE2, the engine (or a strict subset of the
engine) the meshes use; Python's ``re`` accepts lookarounds and
backreferences that they reject.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

import re2

_RE2_OPTIONS = re2.Options()
# RE2 otherwise prints every parse error to stderr, which would leak past the
# CLI's own error reporting.
_RE2_OPTIONS.log_errors = False

_META = frozenset("\\.^$|?*+()[]{}")


@functools.lru_cache(maxsize=4096)
def re2_error(pattern: str) -> str | None:
    """Return RE2's complaint about *pattern*, or None when it compiles."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"invalid RE2 regex {pattern!r}: {detail}"
    return None


def escape(literal: str) -> str:
    """Escape only the characters RE2 treats specially, keeping paths readable."""
    return "".join("\\" + ch if ch in _META else ch for ch in literal)


def literal_of(pattern: str) -> str | None:
    """Return the literal string *pattern* matches, or None if it is not a literal.

    Backslash-escaped punctuation counts as literal (``/v1\\.json``).
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern) and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            return None
        if ch in _META:
            return None
        out.append(ch)
        i += 1
    return "".join(out)


def _ends_with_unescaped(pattern: str, suffix: str) -> bool:
    if not pattern.endswith(suffix):
        return False
    backslashes = len(pattern) - len(suffix) - len(pattern[: -len(suffix)].rstrip("\\"))
    return backslashes % 2 == 0


class MatchType(StrEnum):
    """How a classified pattern matches."""

    ANY = "Any"  # matches every value
    EXACT = "Exact"  # the whole value equals ``value``
    PREFIX = "Prefix"  # the value starts with ``value`` (plain string prefix)
    SUFFIX = "Suffix"  # the value ends with ``value``
    REGEX = "Regex"  # RE2 ``value`` full-matches the value


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regex reduced to the simplest full-match form that means the same."""

    type: MatchType
    value: str

    def full_regex(self) -> str:
        """The pattern as one full-match RE2 regex, for targets that take only regexes."""
        if self.type is MatchType.ANY:
            return ".*"
        if self.type is MatchType.EXACT:
            # An empty exact value ("$" as an SMI path) must stay "only the empty
            # string": an empty regex would match everything in some engines.
            return escape(self.value) if self.value else "^$"
        if self.type is MatchType.PREFIX:
            return escape(self.value) + ".*"
        if self.type is MatchType.SUFFIX:
            return ".*" + escape(self.value)
        return self.value


@functools.lru_cache(maxsize=4096)
def classify_path(path_regex: str) -> Pattern:
    """Classify an SMI (prefix-anchored) path regex as a full-match pattern."""
    body = path_regex[1:] if path_regex.startswith("^") else path_regex
    if body in ("", ".*"):
        return Pattern(MatchType.ANY, "")
    if _ends_with_unescaped(body, "$"):
        lit = literal_of(body[:-1])
        if lit is not None:
            return Pattern(MatchType.EXACT, lit)
    stem = body[:-2] if _ends_with_unescaped(body, ".*") else body
    lit = literal_of(stem)
    if lit is not None:
        return Pattern(MatchType.PREFIX, lit) if lit else Pattern(MatchType.ANY, "")
    # The general form, always equivalent: the original (anchors included, since
    # stripping "^" from "^*" breaks it) then anything. A trailing "$" needs no
    # special case: "(?:/a$).*" only full-matches "/a", and "(?:|$).*" keeps the
    # empty alternative that makes "|$" match every path.
    return Pattern(MatchType.REGEX, f"(?:{path_regex}).*")


@functools.lru_cache(maxsize=4096)
def classify_value(value_regex: str) -> Pattern:
    """Classify a full-match header value regex."""
    body = value_regex[1:] if value_regex.startswith("^") else value_regex
    if _ends_with_unescaped(body, "$"):
        body = body[:-1]
    # Anchors are redundant in a full match, but only the original is sure to compile.
    regex = body if body == value_regex else f"(?:{value_regex})"
    if body in (".*", ".+"):
        # ".+" still requires a non-empty value; presence is the closest form
        # every target has, and header presence implies a value in HTTP/2.
        return Pattern(MatchType.ANY, "") if body == ".*" else Pattern(MatchType.REGEX, regex)
    lit = literal_of(body)
    if lit is not None:
        return Pattern(MatchType.EXACT, lit)
    if _ends_with_unescaped(body, ".*"):
        lit = literal_of(body[:-2])
        if lit is not None:
            return Pattern(MatchType.PREFIX, lit)
    if body.startswith(".*"):
        lit = literal_of(body[2:])
        if lit is not None:
            return Pattern(MatchType.SUFFIX, lit)
    return Pattern(MatchType.REGEX, regex)
