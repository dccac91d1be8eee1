"""The loader records where it substituted variables (payload paths), and names steps by handle for diffs."""

from __future__ import annotations

from pathlib import Path

from loader_helpers import BODY, ENV, WELCOME, load, make


def test_substituted_paths_cover_values_and_pointer_targets(tmp_path: Path) -> None:
    make(tmp_path, "welcome", WELCOME, {"steps/email_1/body.html": BODY})
    loaded = load(tmp_path, "welcome", ENV)
    assert loaded.ok
    # "name" holds ${APP_NAME}; the body file does too, recorded as `body` (the payload key), not `body@`.
    assert loaded.substituted_paths == frozenset({("name",), ("steps", 1, "template", "data", "body")})
    assert loaded.secret_paths == frozenset({("", ("name",)), ("email_1", ("template", "data", "body"))})


def test_strings_without_a_substitution_are_not_recorded(tmp_path: Path) -> None:
    text = WELCOME.replace("Welcome to ${APP_NAME}", "Cost $${PRICE}").replace(
        '"subject": "Welcome, {{ data.first_name }}!"', '"subject": "${EMPTY}"')
    make(tmp_path, "plain", text, {"steps/email_1/body.html": "no variables\n"})
    loaded = load(tmp_path, "plain", {"EMPTY": ""})
    assert loaded.ok
    # the escape substitutes nothing; an empty value still is a substitution (the field is env-driven)
    assert loaded.substituted_paths == frozenset({("steps", 1, "template", "data", "subject")})


def test_nothing_recorded_without_substitution_or_payload(tmp_path: Path) -> None:
    make(tmp_path, "raw", WELCOME, {"steps/email_1/body.html": BODY})
    assert load(tmp_path, "raw", ENV, substitute=False).substituted_paths == frozenset()
    broken = load(tmp_path, "raw", {})  # APP_NAME unset: an error, no payload
    assert broken.payload is None and broken.secret_paths == frozenset()


def test_raw_text_of_each_substituted_field_is_kept_for_the_diffs(tmp_path: Path) -> None:
    make(tmp_path, "welcome", WELCOME, {"steps/email_1/body.html": BODY})
    loaded = load(tmp_path, "welcome", ENV)
    assert loaded.raw_substituted == {
        ("name",): "Welcome to ${APP_NAME}",
        ("steps", 1, "template", "data", "body"): BODY,  # the file's text as written
    }
    assert loaded.secret_templates == {
        ("", ("name",)): ("Welcome to ${APP_NAME}",),
        ("email_1", ("template", "data", "body")): (BODY,),
    }
    assert load(tmp_path, "welcome", ENV, substitute=False).raw_substituted == {}


def test_a_substituted_path_without_its_raw_text_has_no_template(tmp_path: Path) -> None:
    make(tmp_path, "welcome", WELCOME, {"steps/email_1/body.html": BODY})
    loaded = load(tmp_path, "welcome", ENV)
    loaded.raw_substituted = {}  # e.g. built by hand: the field is hidden whole, as before
    assert loaded.secret_templates == {("", ("name",)): (), ("email_1", ("template", "data", "body")): ()}


def test_public_variables_are_neither_secrets_nor_hidden_in_diffs(tmp_path: Path) -> None:
    body = "<p>${APP_NAME}: call ${PHONE}</p>\n"
    make(tmp_path, "welcome", WELCOME, {"steps/email_1/body.html": body})
    env = {"APP_NAME": "Acme ${x}", "PHONE": "+1 555 0100", "NOTIFLOWS_PUBLIC_VARS": "APP_NAME"}
    loaded = load(tmp_path, "welcome", env)
    assert loaded.ok
    assert loaded.secret_values == frozenset({"+1 555 0100"})
    # "name" used only APP_NAME: shown as is; the body keeps PHONE hidden, with APP_NAME's value filled in
    # (escaped, so a "${" inside the value stays literal)
    assert loaded.substituted_paths == frozenset({("steps", 1, "template", "data", "body")})
    assert loaded.raw_substituted == {("steps", 1, "template", "data", "body"): "<p>Acme $${x}: call ${PHONE}</p>\n"}
    everything_public = load(tmp_path, "welcome", {**env, "NOTIFLOWS_PUBLIC_VARS": "*"})
    assert everything_public.secret_values == frozenset() and everything_public.substituted_paths == frozenset()
