from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from notiflows_deploy.envsubst import SYNTAX, UNSET, escape, line_col, substitute

ENV = {"HOST": "mail.example.com", "EMPTY": "", "_X1": "one"}


def test_replaces_names_and_collects_values() -> None:
    sub = substitute("https://${HOST}/x?${_X1}&${EMPTY}", ENV)
    assert sub.text == "https://mail.example.com/x?one&"
    assert sub.issues == ()
    assert sub.values == {"mail.example.com", "one"}  # the empty value cannot be masked
    assert sub.names == {"HOST", "_X1", "EMPTY"}


def test_text_without_references_is_returned_as_is() -> None:
    text = "Price: $5, $HOST, $$, {{ data.x }}"
    sub = substitute(text, ENV)
    assert sub.text is text
    assert not sub.values and not sub.issues


def test_escape_gives_a_literal() -> None:
    assert substitute("$${HOST}", ENV).text == "${HOST}"
    assert substitute("Total: $${{ data.amount }}", ENV).text == "Total: ${{ data.amount }}"
    # `$` before the escape stays a dollar sign
    assert substitute("$$${HOST}", ENV).text == "$${HOST}"
    assert substitute("$$${HOST}", {}).issues == ()


def test_every_unset_name_is_reported_once_at_its_first_use() -> None:
    sub = substitute("${A} ${B}\n  ${A} ${HOST}", ENV)
    assert [(i.code, i.name, i.offset) for i in sub.issues] == [(UNSET, "A", 0), (UNSET, "B", 5)]
    assert sub.text == "${A} ${B}\n  ${A} mail.example.com"
    assert "A" in sub.issues[0].message() and "env" in sub.issues[0].hint()


def test_bad_references_are_syntax_errors() -> None:
    for text in ("${}", "${1A}", "${API-URL}", "${NAME", "x ${{ data.amount }}", "${ HOST }"):
        sub = substitute(text, ENV)
        assert [i.code for i in sub.issues] == [SYNTAX], text
        assert "$${" in sub.issues[0].hint()
    sub = substitute("ok ${HOST} then ${bad name}", ENV)
    assert [(i.code, i.offset) for i in sub.issues] == [(SYNTAX, 16)]
    assert sub.issues[0].name == "${bad name}"


def test_messages_never_hold_values() -> None:
    sub = substitute("${HOST} ${MISSING} ${-}", ENV)
    for issue in sub.issues:
        assert "mail.example.com" not in issue.message() + issue.hint()


def test_line_col() -> None:
    text = "ab\ncdé\nf"
    assert line_col(text, 0) == (1, 1)
    assert line_col(text, 3) == (2, 1)
    assert line_col(text, 7) == (3, 1)
    assert line_col(text, 5) == (2, 3)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(st.text().filter(lambda t: "$" not in t), st.dictionaries(names, st.text()))
def test_text_without_dollar_is_unchanged(text: str, env: dict[str, str]) -> None:
    sub = substitute(text, env)
    assert sub.text == text and sub.issues == () and sub.values == frozenset()


@given(st.text(alphabet=st.sampled_from(list("${}ab_1 \n"))) | st.text(), st.dictionaries(names, st.text()))
def test_escaping_round_trips(text: str, env: dict[str, str]) -> None:
    sub = substitute(escape(text), env)
    assert sub.text == text
    assert sub.issues == () and sub.names == frozenset()


literal = st.text(alphabet=st.sampled_from(list("ab$ {}\n")))


@given(st.lists(st.one_of(literal, names.map(lambda n: ("ref", n)))),
       st.dictionaries(names, st.text(alphabet=st.sampled_from(list("xy${}")))))
def test_substitution_matches_a_model(parts: list[str | tuple[str, str]], env: dict[str, str]) -> None:
    # Text made of escaped literal runs and ${NAME} references, against a straightforward model.
    pieces: list[str] = []  # source text, with consecutive literals escaped together
    run, expected, unset = "", "", []
    for part in [*parts, None]:
        if isinstance(part, str):
            run += part
            expected += part
            continue
        pieces.append(escape(run))
        # The one thing the syntax cannot say: a "$" right before a reference ("$${X}" is the escape).
        assume(not (part is not None and run.endswith("$")))
        run = ""
        if part is None:
            break
        name = part[1]
        pieces.append("${" + name + "}")
        if name in env:
            expected += env[name]
        else:
            expected += "${" + name + "}"
            if name not in unset:
                unset.append(name)
    sub = substitute("".join(pieces), env)
    assert sub.text == expected
    assert [(i.code, i.name) for i in sub.issues] == [(UNSET, n) for n in unset]
    assert sub.values == {env[n] for n in sub.names if env[n]}
