from __future__ import annotations

import re
import time

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from notiflows_deploy.envsubst import (
    SYNTAX,
    UNSET,
    escape,
    extract_values,
    line_col,
    masked_template,
    substitute,
)

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


# ---- reading the values back out of a substituted text (extract_values) ---------------------------------


def test_extract_values_reads_the_variables_out_of_a_fitting_text() -> None:
    raw = "Acme: order {{ data.n }} has shipped. Questions? Call ${SUPPORT_PHONE}."
    assert extract_values(raw, "Acme: order {{ data.n }} has shipped. Questions? Call +1 555 0100.") == {
        "SUPPORT_PHONE": "+1 555 0100"}
    # the text around the variable changed: the value cannot be isolated
    assert extract_values(raw, "Acme: order {{ data.n }} is on its way. Questions? Call +1 555 0100.") is None
    assert extract_values(raw, "") is None


def test_extract_values_with_several_and_repeated_variables() -> None:
    raw = "${SCHEME}://${HOST}/a?back=${SCHEME}://${HOST}/b"
    assert extract_values(raw, "https://x.example/a?back=https://x.example/b") == {
        "SCHEME": "https", "HOST": "x.example"}
    # a repeated name must hold the same value at every use (a backreference)
    assert extract_values(raw, "https://x.example/a?back=http://x.example/b") is None
    assert extract_values("${A}-${A}", "ab-c-ab-c") == {"A": "ab-c"}
    assert extract_values("${A}-${A}", "ab-cd") is None
    # a literal found before the variable starts is no place for it to end
    assert extract_values("a${B}${B}${A}a${C}", "aa") == {"B": "", "A": "", "C": ""}


def test_extract_values_is_lazy_dotall_and_anchored_at_both_ends() -> None:
    assert extract_values("${A}-${B}", "p-q-r") == {"A": "p", "B": "q-r"}  # leftmost split, as (.*?) gives
    assert extract_values("${A}${B}", "abc") == {"A": "", "B": "abc"}
    assert extract_values("<p>${A}</p>", "<p>line 1\nline 2</p>") == {"A": "line 1\nline 2"}
    assert extract_values("x ${A} y", "x 1 y y") == {"A": "1 y"}  # the last literal ends the text
    assert extract_values("x ${A} y", "zx 1 y") is None  # the first one starts it
    assert extract_values("no variables", "no variables") == {}
    assert extract_values("no variables", "no variables!") is None


def test_extract_values_follows_the_escape_and_invalid_references() -> None:
    # `$${X}` is the literal text `${X}`, and an invalid reference stays as written (as `substitute` does)
    assert extract_values("cost $${X} ${Y} ${bad-ref}", "cost ${X} 12 ${bad-ref}") == {"Y": "12"}
    assert extract_values("cost $${X} ${Y}", "cost $${X} 12") is None
    assert masked_template("cost $${X} ${Y} ${bad-ref}") == "cost ${X} *** ${bad-ref}"
    assert masked_template("Call ${P} or ${P}", "<hidden>") == "Call <hidden> or <hidden>"


def test_extract_values_gives_up_within_its_budget_on_a_pathological_text() -> None:
    # Repeated names make the search exhaustive; past the budget the answer is None (the caller hides).
    raw = "${A} ${B} ${A} ${C} ${A} end"
    start = time.monotonic()
    assert extract_values(raw, " " * 5000 + "x") is None
    assert extract_values(raw, "a " * 2_000_000 + "no") is None  # every literal scanned once, not per retry
    assert extract_values("${A}${A}${B}x", "a" * 4_000_000) is None  # long comparisons count against the budget
    assert extract_values("${A}-${A}", "ab" * 1_000_000 + "-" + "ab" * 1_000_000) == {"A": "ab" * 1_000_000}
    assert time.monotonic() - start < 2
    # without a repeated name the search is linear: a long text that fits is found at once
    text = "k=" + "v" * 200_000 + "&x=" + "w " * 50_000 + "!"
    assert extract_values("k=${K}&x=${X}!", text) == {"K": "v" * 200_000, "X": "w " * 50_000}


# A template as parts: literal texts (small alphabet, so literals recur inside values) and variables
# (few names, so they repeat).
small = st.text(alphabet=st.sampled_from(list("ab-$ {}\n")), max_size=4)
tparts = st.lists(st.one_of(small, st.sampled_from(["A", "B", "C"]).map(lambda n: ("var", n))), max_size=7)
values = st.text(alphabet=st.sampled_from(list("ab-{ \n")), max_size=5)


def raw_and_regex(parts: list[str | tuple[str, str]]) -> tuple[str, str]:
    """The template text and the regex the brief describes (lazy groups, backreferences), built apart."""
    raw, regex, seen = "", "", []
    for part in parts:
        if isinstance(part, str):
            assume(not (part.endswith("$")))  # "$" right before a reference cannot be written
            raw += escape(part)
            regex += re.escape(part)
        else:
            name = part[1]
            raw += "${" + name + "}"
            regex += f"(?P={name})" if name in seen else f"(?P<{name}>.*?)"
            seen.append(name)
    return raw, regex


@settings(max_examples=400)
@given(tparts, st.dictionaries(st.sampled_from(["A", "B", "C"]), values, min_size=3))
def test_extracted_values_reproduce_the_substituted_text(parts: list[str | tuple[str, str]],
                                                         env: dict[str, str]) -> None:
    raw, regex = raw_and_regex(parts)
    text = substitute(raw, env).text
    found = extract_values(raw, text)
    assert found is not None
    assert set(found) == {p[1] for p in parts if isinstance(p, tuple)}
    # Ambiguous splits may differ from env; whatever was found must rebuild the text exactly.
    assert substitute(raw, found).text == text
    match = re.fullmatch(regex, text, re.DOTALL)
    assert match is not None and found == match.groupdict()  # the same answer as the lazy regex


@settings(max_examples=400)
@given(tparts, st.text(alphabet=st.sampled_from(list("ab-$ {}\n")), max_size=12))
def test_extract_values_agrees_with_the_lazy_regex_on_any_text(parts: list[str | tuple[str, str]],
                                                               text: str) -> None:
    raw, regex = raw_and_regex(parts)
    found = extract_values(raw, text)
    match = re.fullmatch(regex, text, re.DOTALL)
    assert (found is None) == (match is None)
    if found is not None and match is not None:
        assert found == match.groupdict()
        assert substitute(raw, found).text == text


def test_expand_only_fills_in_the_named_variables_and_round_trips() -> None:
    from notiflows_deploy.envsubst import expand_only, substitute

    env = {"A": "x ${B} y", "B": "secret"}
    raw = "${A} and ${B} and $${A} and ${C}"
    partial = expand_only(raw, env, frozenset({"A"}))
    assert partial == "x $${B} y and ${B} and $${A} and ${C}"
    assert substitute(partial, env).text == substitute(raw, env).text
