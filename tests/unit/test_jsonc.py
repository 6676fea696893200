"""The strict JSONC reader: comments and trailing commas are fine, broken files fail with a position."""

from __future__ import annotations

import pytest
from devcontainer_builder import jsonc


def test_comments_and_trailing_commas_are_accepted() -> None:
    text = """{
      // a line comment with "quotes" and a , comma
      "image": "debian", /* block */
      "url": "http://not-a-comment//here",
      "features": {"a": 1, "b": [1, 2,],},
    }"""
    assert jsonc.loads(text) == {
        "image": "debian",
        "url": "http://not-a-comment//here",
        "features": {"a": 1, "b": [1, 2]},
    }


def test_a_truncated_file_fails_where_it_ends() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads('{\n  "image": "x",\n')
    assert caught.value.line == 2
    assert "truncated" in caught.value.reason


def test_a_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads('{\n  "image": "x"\n  "name": "y"\n}')
    assert (caught.value.line, caught.value.column) == (3, 3)


def test_an_unterminated_block_comment_is_an_error() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads('{"image": "x"} /* open')
    assert caught.value.line == 1
    assert "comment" in caught.value.reason


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(jsonc.JsoncError, match="empty"):
        jsonc.loads("  // only a comment\n")


def test_positions_survive_comments_before_the_error() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads('/* one\ntwo */ {"a": tru}')
    assert caught.value.line == 2
