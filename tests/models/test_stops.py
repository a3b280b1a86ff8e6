"""`cut_at_stop`: checking only the newest piece finds what a search of the whole text finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codeduel.models._stops import cut_at_stop

ALPHABET = "ab\n`"  # few letters: stops occur often, and straddle pieces


@settings(max_examples=500)
@given(
    st.lists(st.text(ALPHABET, min_size=1, max_size=6), max_size=30),
    st.lists(st.text(ALPHABET, min_size=1, max_size=5), min_size=1, max_size=4),
)
def test_piecewise_cut_equals_a_search_of_the_whole_text(
    pieces: list[str], stops: list[str]
) -> None:
    text = ""
    cut = None
    for piece in pieces:
        text += piece
        cut = cut_at_stop(text, stops, len(piece))
        if cut is not None:
            break
    # The stream stops at the first piece in which a stop ends, cut where the earliest
    # occurrence of any stop starts: what a search of the whole text finds.
    if cut is None:
        assert not any(s in text for s in stops)
    else:
        assert cut == min(text.find(s) for s in stops if s in text)
        assert cut == cut_at_stop(text, stops, len(text))


def test_edges() -> None:
    assert cut_at_stop("abc\n```", ["\n```"], 2) == 3
    assert cut_at_stop("abc", [], 3) is None
    assert cut_at_stop("abc\n```", ["\n```"], 0) is None
    assert cut_at_stop("x\n```y", ["\n```", "y"], 6) == 1
