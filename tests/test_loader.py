"""The loader, document level: reading notiflow.json, handles, payload, env substitution."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import BODY, ENV, ROOT, WELCOME, MemTree, codes, load, make, pos

from notiflows_deploy.files import WorkTree
from notiflows_deploy.jsonpos import ParsedJson
from notiflows_deploy.loader import is_valid_handle, list_handles, load_notiflow, suggest_handle
from notiflows_deploy.model import Problem, Severity

EXPECTED_PAYLOAD: dict[str, Any] = {
    "name": "Welcome to Acme",
    "active": True,
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {
            "handle": "email_1",
            "type": "channel",
            "position": 1,
            "channel_type": "email",
            "channel_handle": "transactional-email",
            "template": {
                "channel_type": "email",
                "data": {
                    "subject": "Welcome, {{ data.first_name }}!",
                    "content_type": "html",
                    "body": "<h1>Hello {{ data.first_name }}</h1>\n<p>From Acme</p>\n",
                },
            },
        },
        {"handle": "end", "type": "end", "position": 2},
    ],
}


@pytest.fixture
def welcome(tmp_path: Path) -> Path:
    make(tmp_path, "welcome-series", WELCOME, {"steps/email_1/body.html": BODY})
    return tmp_path


# --- the happy path and the payload ---------------------------------------------------------------


def test_payload_strips_schema_and_meta_inlines_body_and_substitutes(welcome: Path) -> None:
    loaded = load(welcome, "welcome-series", ENV, display_prefix="sub/dir/")
    assert loaded.problems == []
    assert loaded.ok
    assert loaded.payload == EXPECTED_PAYLOAD
    assert list(loaded.payload["steps"][1]["template"]["data"]) == ["subject", "content_type", "body"]
    assert loaded.meta_sha == "a1b2c3"
    assert loaded.meta == {"version": 3, "sha": "a1b2c3", "status": "draft", "note": "${NOT_SUBSTITUTED}"}
    assert loaded.schema_url == "https://notiflows.com/schemas/notiflow.json"
    assert loaded.document == json.loads(WELCOME)  # as written: pointer and ${...} kept
    assert loaded.secret_values == frozenset({"Acme"})
    assert loaded.path == "sub/dir/.notiflows/notiflows/welcome-series"
    assert loaded.file == "sub/dir/.notiflows/notiflows/welcome-series/notiflow.json"


def test_payload_equals_inline_body_twin(welcome: Path) -> None:
    twin = json.loads(WELCOME)
    data = twin["steps"][1]["template"]["data"]
    del data["body@"]
    data["body"] = BODY
    make(welcome, "welcome-twin", json.dumps(twin, indent=4))
    a, b = load(welcome, "welcome-series", ENV), load(welcome, "welcome-twin", ENV)
    assert a.ok and b.ok
    assert a.payload == b.payload
    assert json.dumps(a.payload, sort_keys=True) == json.dumps(b.payload, sort_keys=True)


def test_no_meta_no_schema(tmp_path: Path) -> None:
    make(tmp_path, "plain", '{"name": "x", "steps": [], "__meta": {"sha": ""}}')
    loaded = load(tmp_path, "plain")
    assert loaded.payload == {"name": "x", "steps": []}
    assert loaded.meta_sha is None and loaded.schema_url is None and loaded.meta == {"sha": ""}
    make(tmp_path, "bare", '{"name": "x"}')
    bare = load(tmp_path, "bare")
    assert bare.payload == {"name": "x"} and bare.meta == {} and bare.meta_sha is None


def test_other_keys_kept_exactly(tmp_path: Path) -> None:
    doc = {
        "name": "n", "description": None, "include_in_preferences": False, "x-extra": {"a": [1, 2.5, None]},
        "steps": [
            {"handle": "c", "type": "condition", "position": 1, "conditions": [{"property": "a", "value": [1]}]},
            {"handle": "s", "type": "channel", "channel_type": "sms", "parent_step_handle": "c",
             "template": {"channel_type": "sms", "data": {"body": "hi", "extra": {"k": [True]}}, "other": 1}},
            "not-a-step",
        ],
    }
    make(tmp_path, "keep", json.dumps(doc))
    loaded = load(tmp_path, "keep")
    assert loaded.payload == doc


# --- env substitution -----------------------------------------------------------------------------


def test_every_unset_variable_is_reported_at_its_reference(tmp_path: Path) -> None:
    text = (
        '{\n'
        '  "name": "${A} and ${B}",\n'
        '  "steps": [{"handle": "s", "type": "channel", "channel_type": "sms",\n'
        '    "template": {"channel_type": "sms", "data": {"body": "x ${C}", "${KEY}": "k"}}}],\n'
        '  "description": "${A}"\n'
        '}\n'
    )
    make(tmp_path, "unset", text)
    loaded = load(tmp_path, "unset", {"KEY": "never-used-in-keys"})
    assert loaded.payload is None
    got = [(p.code, p.line, p.column, p.message.split()[2]) for p in loaded.problems]
    assert got == [
        ("env-unset", 2, 12, "A"),
        ("env-unset", 2, 21, "B"),
        ("env-unset", 4, 61, "C"),
        ("env-unset", 5, 19, "A"),
    ]
    assert pos(text, "${B}") == (2, 21) and pos(text, "${C}") == (4, 61)
    for problem in loaded.problems:
        assert "workflow" in problem.hint and "remove" in problem.hint
        assert problem.file == ".notiflows/notiflows/unset/notiflow.json"
    assert loaded.secret_values == frozenset()  # KEY was never substituted: keys are left alone


def test_env_in_extracted_file_reported_inside_the_file(tmp_path: Path) -> None:
    body = "line one\n  ${FIRST} ok ${HOME_URL}\n${SECOND} and ${FIRST}\n"
    make(tmp_path, "files", WELCOME, {"steps/email_1/body.html": body})
    loaded = load(tmp_path, "files", {"APP_NAME": "Acme", "HOME_URL": "https://acme.test"})
    file = ".notiflows/notiflows/files/steps/email_1/body.html"
    assert [(p.file, p.line, p.column, p.code) for p in loaded.problems] == [
        (file, 2, 3, "env-unset"),
        (file, 3, 1, "env-unset"),
    ]
    assert "FIRST" in loaded.problems[0].message and "SECOND" in loaded.problems[1].message
    assert loaded.payload is None


def test_substitution_in_files_and_escape(tmp_path: Path) -> None:
    body = "Visit ${HOME_URL}. Total: $${{ data.total }} literal $${HOME_URL}\n"
    make(tmp_path, "esc", WELCOME.replace("Welcome to ${APP_NAME}", "Cost $${PRICE}"),
         {"steps/email_1/body.html": body})
    loaded = load(tmp_path, "esc", {"HOME_URL": "https://acme.test", "PRICE": "9"})
    assert loaded.problems == []
    assert loaded.payload is not None
    assert loaded.payload["name"] == "Cost ${PRICE}"
    assert loaded.payload["steps"][1]["template"]["data"]["body"] == (
        "Visit https://acme.test. Total: ${{ data.total }} literal ${HOME_URL}\n"
    )
    assert loaded.secret_values == frozenset({"https://acme.test"})


def test_env_syntax_error_with_hint(tmp_path: Path) -> None:
    make(tmp_path, "syn", WELCOME, {"steps/email_1/body.html": "Total: ${{ data.total }}\n"})
    loaded = load(tmp_path, "syn", ENV)
    [problem] = loaded.problems
    assert (problem.code, problem.line, problem.column) == ("env-syntax", 1, 8)
    assert "$${" in problem.hint
    assert problem.file.endswith("steps/email_1/body.html")


def test_secret_values_never_in_messages(tmp_path: Path) -> None:
    secret = "s3cr3t-value"
    make(tmp_path, "sec", WELCOME.replace("{{ data.first_name }}!", "${TOKEN} ${MISSING} ${-}"),
         {"steps/email_1/body.html": "   \n${TOKEN}\n"})
    loaded = load(tmp_path, "sec", {"APP_NAME": "Acme", "TOKEN": secret})
    assert {"env-unset", "env-syntax"} <= set(codes(loaded))
    assert secret in loaded.secret_values
    for problem in loaded.problems:
        assert secret not in problem.message + problem.hint


def test_substitute_false_leaves_references_and_reports_nothing(tmp_path: Path) -> None:
    make(tmp_path, "raw", WELCOME, {"steps/email_1/body.html": "${UNSET} ${{ bad }}\n"})
    loaded = load(tmp_path, "raw", {}, substitute=False)
    assert loaded.problems == []
    assert loaded.payload is not None
    assert loaded.payload["name"] == "Welcome to ${APP_NAME}"
    assert loaded.payload["steps"][1]["template"]["data"]["body"] == "${UNSET} ${{ bad }}\n"
    assert loaded.secret_values == frozenset()


# --- reading notiflow.json ------------------------------------------------------------------------


def one(loaded: Any) -> Problem:
    assert len(loaded.problems) == 1, loaded.problems
    assert loaded.payload is None and not loaded.ok
    problem: Problem = loaded.problems[0]
    assert problem.file.endswith("notiflow.json")
    return problem


def test_notiflow_json_not_utf8(tmp_path: Path) -> None:
    make(tmp_path, "latin", b'{\n  "name": "Caf' + b"\xe9" + b'"\n}\n')
    p = one(load(tmp_path, "latin"))
    assert (p.code, p.line, p.column) == ("notiflow-json-not-utf8", 2, 15)
    assert "0xe9" in p.message


def test_not_utf8_column_counts_characters(tmp_path: Path) -> None:
    make(tmp_path, "multi", '{"name": "é€😀'.encode() + b"\xff" + b'"}')
    p = one(load(tmp_path, "multi"))
    assert (p.line, p.column) == (1, 14)


def test_notiflow_json_empty_and_blank(tmp_path: Path) -> None:
    make(tmp_path, "empty", b"")
    make(tmp_path, "blank", " \n\t\n")
    for handle in ("empty", "blank"):
        p = one(load(tmp_path, handle))
        assert (p.code, p.line, p.column) == ("notiflow-json-empty", 1, 1)


def test_notiflow_json_too_large(tmp_path: Path) -> None:
    make(tmp_path, "big", '{"name": "' + "x" * 200 + '"}')
    p = one(load(tmp_path, "big", max_bytes=100))
    assert p.code == "notiflow-json-too-large"
    assert "100 bytes" in p.message and "212" in p.message


def test_bom_is_accepted(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    make(tmp_path, "bom", bom + WELCOME.encode(), {"steps/email_1/body.html": bom + BODY.encode()})
    loaded = load(tmp_path, "bom", ENV)
    assert loaded.ok and loaded.payload == EXPECTED_PAYLOAD


def test_bom_positions_do_not_count_it(tmp_path: Path) -> None:
    make(tmp_path, "bombad", b'\xef\xbb\xbf{"name": 1,}')
    p = one(load(tmp_path, "bombad"))
    assert (p.code, p.line, p.column) == ("json-syntax", 1, 12)


def test_invalid_json_position(tmp_path: Path) -> None:
    make(tmp_path, "syntax", '{\n  "name": "x",\n  "steps": [1, 2,]\n}\n')
    p = one(load(tmp_path, "syntax"))
    assert (p.code, p.line, p.column) == ("json-syntax", 3, 18)


def test_duplicate_key(tmp_path: Path) -> None:
    make(tmp_path, "dup", '{\n  "name": "x",\n  "name": "y"\n}')
    p = one(load(tmp_path, "dup"))
    assert (p.code, p.line, p.column) == ("json-syntax", 3, 3)


def test_top_level_not_object(tmp_path: Path) -> None:
    make(tmp_path, "arr", "\n  [1, 2]")
    p = one(load(tmp_path, "arr"))
    assert p.code == "json-not-object" and "an array" in p.message


def test_too_deep(tmp_path: Path) -> None:
    make(tmp_path, "deep", '{"a": ' + "[" * 100 + "]" * 100 + "}")
    p = one(load(tmp_path, "deep"))
    assert p.code == "json-too-deep"


def test_notiflow_json_missing(tmp_path: Path) -> None:
    (tmp_path / ROOT / "nojson" / "steps").mkdir(parents=True)
    p = one(load(tmp_path, "nojson"))
    assert p.code == "notiflow-json-missing"
    assert p.file == ".notiflows/notiflows/nojson/notiflow.json"


def test_notiflow_json_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / ROOT / "dirjson" / "notiflow.json").mkdir(parents=True)
    assert one(load(tmp_path, "dirjson")).code == "notiflow-json-not-file"


def test_notiflow_dir_missing(tmp_path: Path) -> None:
    assert one(load(tmp_path, "gone")).code == "notiflow-dir-missing"


def test_symlinked_notiflow_dir_refused(welcome: Path) -> None:
    os.symlink("welcome-series", welcome / ROOT / "alias")
    p = one(load(welcome, "alias", ENV))
    assert p.code == "notiflow-dir-symlink"


def test_notiflow_json_symlink_inside_ok_outside_refused(tmp_path: Path) -> None:
    d = make(tmp_path, "linked", '{"name": "a"}')
    (d / "notiflow.json").rename(d / "real.json")
    os.symlink("real.json", d / "notiflow.json")
    assert load(tmp_path, "linked").payload == {"name": "a"}
    d2 = (tmp_path / ROOT / "outlink")
    d2.mkdir()
    os.symlink("../linked/real.json", d2 / "notiflow.json")
    assert one(load(tmp_path, "outlink")).code == "notiflow-json-symlink-escapes"


def test_unreadable_file_is_a_problem_not_a_crash() -> None:
    class Broken(MemTree):
        def read_bytes(self, path: str) -> bytes:
            raise PermissionError(13, "Permission denied", path)

    tree = Broken({f"{ROOT}/x/notiflow.json": b"{}"})
    loaded = load_notiflow(tree, notiflows_root=ROOT, handle="x", env={})
    assert codes(loaded) == ["notiflow-json-unreadable"] and "Permission denied" in loaded.problems[0].message


# --- handles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["welcome-series", "a", "order-shipped-2", "2fa", "x-1-y"])
def test_valid_handles(name: str) -> None:
    assert is_valid_handle(name)


@pytest.mark.parametrize(
    "name", ["welcome_series", "Welcome", "-a", "a-", "a--b", "", "a b", "a.b", ".hidden", "é", "a\n"]
)
def test_invalid_handles(name: str) -> None:
    assert not is_valid_handle(name)


def test_handle_invalid_problem_has_rename_hint(tmp_path: Path) -> None:
    make(tmp_path, "welcome_series", WELCOME, {"steps/email_1/body.html": BODY})
    loaded = load(tmp_path, "welcome_series", ENV)
    p = one(loaded)
    assert p.code == "handle-invalid"
    assert p.hint == 'rename the directory to "welcome-series"'
    assert loaded.document is not None  # still loaded, so other problems are found too
    assert suggest_handle("Order__Shipped!") == "order-shipped"
    assert suggest_handle("___") == ""


def test_list_handles(tmp_path: Path) -> None:
    assert list_handles(WorkTree(tmp_path), ROOT) == []
    root = tmp_path / ROOT
    for name in ("b-flow", "a-flow", "Bad_Name"):
        (root / name).mkdir(parents=True)
    (root / "README.md").write_text("not a notiflow")
    os.symlink("a-flow", root / "c-link")
    assert list_handles(WorkTree(tmp_path), ROOT) == ["Bad_Name", "a-flow", "b-flow", "c-link"]
    (tmp_path / "file-root").write_text("")
    assert list_handles(WorkTree(tmp_path), "file-root") == []


# --- the checker ----------------------------------------------------------------------------------


class FakeChecker:
    def __init__(self, severity: Severity) -> None:
        self.severity = severity
        self.seen: list[str] = []

    def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]:
        self.seen.append(file)
        line, column = parsed.locate(("name",))
        return [Problem(file, line, column, "schema", "name is odd", severity=self.severity)]


def test_checker_errors_block_the_payload_warnings_do_not(welcome: Path) -> None:
    error = FakeChecker(Severity.ERROR)
    loaded = load(welcome, "welcome-series", ENV, checker=error, display_prefix="p/")
    assert error.seen == ["p/.notiflows/notiflows/welcome-series/notiflow.json"]
    assert [(p.code, p.line, p.column) for p in loaded.errors] == [("schema", 3, 11)]
    assert loaded.payload is None and not loaded.ok
    warn = load(welcome, "welcome-series", ENV, checker=FakeChecker(Severity.WARNING))
    assert warn.ok and warn.errors == [] and len(warn.warnings) == 1 and warn.payload == EXPECTED_PAYLOAD


def test_problems_are_sorted(tmp_path: Path) -> None:
    text = WELCOME.replace('"name": "Welcome to ${APP_NAME}"', '"name": "${Z}"').replace(
        '"active": true', '"active": "${Y}"')
    make(tmp_path, "sorted", text, {"steps/email_1/body.html": "${X}"})
    loaded = load(tmp_path, "sorted", {}, checker=FakeChecker(Severity.WARNING))
    keys = [(p.file, p.line, p.column) for p in loaded.problems]
    assert keys == sorted(keys) and len(keys) == 4


# --- only the Tree protocol ---------------------------------------------------------------------


def test_memory_tree_and_no_direct_filesystem_access(monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"{ROOT}/welcome-series"
    tree = MemTree({
        f"{base}/notiflow.json": WELCOME.encode(),
        f"{base}/steps/email_1/real.html": BODY.encode(),
        f"{base}/steps/email_1/body.html": ("link", "real.html"),
        "elsewhere/x": b"",
    })
    assert list_handles(tree, ROOT) == ["welcome-series"]

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"filesystem touched: {args!r}")

    for target, name in ((os, "lstat"), (os, "stat"), (os, "readlink"), (os, "listdir"), (os, "scandir"),
                         (Path, "read_bytes"), (Path, "read_text"), (Path, "exists")):
        monkeypatch.setattr(target, name, forbidden)
    monkeypatch.setattr("builtins.open", forbidden)
    loaded = load_notiflow(tree, notiflows_root=ROOT, handle="welcome-series", env=ENV)
    monkeypatch.undo()
    assert loaded.problems == [] and loaded.payload == EXPECTED_PAYLOAD
    assert tree.reads == [f"{base}/notiflow.json", f"{base}/steps/email_1/real.html"]


# --- performance ----------------------------------------------------------------------------------


def test_thousand_notiflows_load_fast(tmp_path: Path) -> None:
    for i in range(1000):
        make(tmp_path, f"flow-{i}", WELCOME, {"steps/email_1/body.html": BODY})
    tree = WorkTree(tmp_path)
    start = time.perf_counter()
    handles = list_handles(tree, ROOT)
    loaded = [load_notiflow(tree, notiflows_root=ROOT, handle=h, env=ENV) for h in handles]
    elapsed = time.perf_counter() - start
    assert len(loaded) == 1000 and all(n.ok for n in loaded)
    assert elapsed < 5.0, f"loading 1,000 notiflows took {elapsed:.2f}s"


@pytest.mark.parametrize("handle", ["..", ".", "", "a/b", "../welcome-series"])
def test_handles_that_are_not_directory_names_read_nothing(welcome: Path, handle: str) -> None:
    tree = MemTree({f"{ROOT}/welcome-series/notiflow.json": b"{}", ".notiflows/notiflow.json": b"{}"})
    loaded = load_notiflow(tree, notiflows_root=ROOT, handle=handle, env={})
    assert codes(loaded) == ["handle-invalid"] and tree.reads == []
