"""The strict JSONC reader: comments and trailing commas are fine, broken files fail with a position."""

from __future__ import annotations

import pytest
from devcontainer_builder.workspace import jsonc


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


@pytest.mark.parametrize("text", ["[,]", "{,}", '{"a": [1,,2]}', '{"a": 1,,}', "[\n  // c\n  ,\n]"])
def test_a_comma_without_a_value_is_not_a_trailing_comma(text: str) -> None:
    """The devcontainer CLI's parser reports these (ValueExpected); so does the builder, with a position."""
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads(text)
    assert "value is expected" in caught.value.reason
    assert caught.value.line >= 1 and caught.value.column >= 1


def test_deep_nesting_is_refused_before_the_parser_recurses() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.loads("[" * 200_000 + "]" * 200_000)
    assert "nesting deeper than" in caught.value.reason and caught.value.column == jsonc.MAX_DEPTH + 1
    assert jsonc.loads("[" * jsonc.MAX_DEPTH + "]" * jsonc.MAX_DEPTH) is not None


def test_a_huge_file_is_refused_without_reading_it_whole(tmp_path) -> None:
    big = tmp_path / "devcontainer.json"
    with open(big, "w") as handle:
        handle.write('{"image": "x", "pad": "')
        handle.write("x" * (50 * 1024 * 1024))
        handle.write('"}')
    with pytest.raises(jsonc.JsoncError, match="larger than 1024 KiB"):
        jsonc.read(str(big))
