"""core/text.py: which characters user text may hold (pure)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.text import control_errors, first_refused


@pytest.mark.parametrize("text", ["a\x00b", "\u202eevil", "a\x1b[31m", "two\nlines", "\x7f",
                                  "\x85", "\u2066x\u2069", "a\u2028b", "tab\there"])
def test_single_line_text_refuses_controls_bidi_and_separators(text: str) -> None:
    assert first_refused(text) is not None


@pytest.mark.parametrize("text", ["\u0645\u0631\u062d\u0628\u0627\u200fabc", "👨\u200d👩\u200d👧", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
                                  "café", "plain text", ""])
def test_real_scripts_and_emoji_sequences_are_allowed(text: str) -> None:
    assert first_refused(text) is None


def test_multiline_fields_may_hold_newlines_and_tabs_only() -> None:
    assert first_refused("a\r\nb\tc", multiline=True) is None
    assert first_refused("a\nb\x00", multiline=True) == "U+0000"


class Inner(msgspec.Struct):
    title: str
    description: str


class Outer(msgspec.Struct):
    items: list[Inner]
    data: dict[str, object]


def test_control_errors_names_every_bad_field_by_path() -> None:
    value = Outer(items=[Inner("ok", "line\nline"), Inner("bad\x1b", "nul\x00")],
                  data={"k\u202e": "v", "x": ["fine", "a\x07"]})
    fields = [e.field for e in control_errors(value)]
    assert fields == ["items.1.title", "items.1.description", "data.k\u202e", "data.x.1"]


@given(st.text(alphabet=st.characters(codec="utf-8", categories=["Cc"])).filter(
    lambda t: t.strip("\t\n\r") != ""))
def test_every_c0_c1_control_is_refused(text: str) -> None:
    assert first_refused(text, multiline=True) is not None
