"""Regex classification: SMI prefix-anchored paths and full-match header values."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st

from smi2mesh.regex import MatchType, Pattern, classify_path, classify_value, literal_of, re2_error


@pytest.mark.parametrize(("regex", "expected"), [
    ("/api", Pattern(MatchType.PREFIX, "/api")),
    ("^/api", Pattern(MatchType.PREFIX, "/api")),
    ("/api.*", Pattern(MatchType.PREFIX, "/api")),
    ("/api$", Pattern(MatchType.EXACT, "/api")),
    ("/v1\\.json$", Pattern(MatchType.EXACT, "/v1.json")),
    (".*", Pattern(MatchType.ANY, "")),
    ("", Pattern(MatchType.ANY, "")),
    ("/v[0-9]+", Pattern(MatchType.REGEX, "(?:/v[0-9]+).*")),
    ("/a|/b", Pattern(MatchType.REGEX, "(?:/a|/b).*")),
    ("/x\\$", Pattern(MatchType.PREFIX, "/x$")),
    ("/a|/b$", Pattern(MatchType.REGEX, "(?:/a|/b$).*")),
    ("^*", Pattern(MatchType.REGEX, "(?:^*).*")),
])
def test_classify_path(regex: str, expected: Pattern) -> None:
    assert classify_path(regex) == expected


@pytest.mark.parametrize(("regex", "expected"), [
    ("acme", Pattern(MatchType.EXACT, "acme")),
    ("^acme$", Pattern(MatchType.EXACT, "acme")),
    ("acme.*", Pattern(MatchType.PREFIX, "acme")),
    (".*acme", Pattern(MatchType.SUFFIX, "acme")),
    (".*", Pattern(MatchType.ANY, "")),
    (".*Firefox.*", Pattern(MatchType.REGEX, ".*Firefox.*")),
])
def test_classify_value(regex: str, expected: Pattern) -> None:
    assert classify_value(regex) == expected


def test_re2_rejects_what_python_accepts() -> None:
    assert re2_error("/a(?=b)") is not None
    assert re2_error("(a)\\1") is not None
    assert re2_error("/a[0-9]+") is None
    assert literal_of("/a.b") is None
    assert literal_of("/a\\.b") == "/a.b"


PATH_CHARS = st.sampled_from(["/", "a", "b", ".", "*", "$", "^", "[0-9]", "+", "|", "\\.", "x"])
TEXTS = st.text(alphabet="/ab.x0$^", max_size=8)


@given(st.lists(PATH_CHARS, max_size=6).map("".join), TEXTS)
def test_full_match_form_means_the_same_as_prefix_anchored(regex: str, text: str) -> None:
    """For any RE2-valid SMI regex R and any path, R prefix-matches iff the
    classified full-match form matches."""
    if re2_error(regex):
        return
    smi = re2.match(f"(?:{regex})", text) is not None
    full = re2.fullmatch(classify_path(regex).full_regex(), text) is not None
    assert smi == full


@given(st.lists(st.sampled_from(["a", "b", ".*", "x", "\\.", "^", "$", "[0-9]"]), max_size=5)
       .map("".join), st.text(alphabet="abx.0", max_size=6))
def test_value_classification_keeps_full_match_meaning(regex: str, text: str) -> None:
    if re2_error(regex):
        return
    direct = re2.fullmatch(f"(?:{regex})", text) is not None
    classified = re2.fullmatch(classify_value(regex).full_regex(), text) is not None
    assert direct == classified


def test_empty_exact_path_never_becomes_an_empty_regex() -> None:
    """'$' is the empty path: it must full-match only '', never everything."""
    pattern = classify_path("$")
    assert pattern == Pattern(MatchType.EXACT, "")
    assert pattern.full_regex() == "^$"
    assert re2.fullmatch(pattern.full_regex(), "/") is None
