"""Loader hardening: odd values, special files, oversized files, exact positions, odd directory names."""

from __future__ import annotations

import json
import os
import socket
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from notiflows_deploy.files import EntryKind, FileTooLarge, WorkTree, read_capped
from notiflows_deploy.loader import LoadedNotiflow, list_handles, load_notiflow
from notiflows_deploy.schema.store import SchemaStore
from notiflows_deploy.validate import DocumentChecker
from tests.loader_helpers import ROOT, MemTree, codes, load, make, pos

EMAIL = {
    "name": "Welcome",
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {
            "handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
            "channel_handle": "transactional-email",
            "template": {"channel_type": "email",
                         "data": {"subject": "Hi", "content_type": "html", "body@": "steps/email_1/body.html"}},
        },
        {"handle": "end", "type": "end", "position": 2},
    ],
}


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def _email(template_channel: object) -> str:
    doc = json.loads(json.dumps(EMAIL))
    doc["steps"][1]["template"]["channel_type"] = template_channel
    return json.dumps(doc, indent=2)


def _finishes(fn: Callable[[], LoadedNotiflow], seconds: float = 10.0) -> LoadedNotiflow:
    """Run `fn` in a thread; fail (instead of hanging the suite) when it blocks."""
    box: list[LoadedNotiflow] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, "loading blocked"
    return box[0]


# --- 1. values of the wrong type ------------------------------------------------------------------


@pytest.mark.parametrize("channel", [["email"], {}, 5, None])
def test_non_string_channel_type_with_an_empty_body_is_reported_not_raised(
    tmp_path: Path, checker: DocumentChecker, channel: object
) -> None:
    text = _email(channel)
    make(tmp_path, "welcome", text, {"steps/email_1/body.html": ""})
    loaded = load(tmp_path, "welcome", checker=checker)
    assert loaded.payload is None
    assert "body-empty" in codes(loaded)
    empty = next(p for p in loaded.problems if p.code == "body-empty")
    assert "a channel template needs a body" in empty.message
    assert (empty.line, empty.column) == pos(text, '"steps/email_1/body.html"')
    assert any(p.code.startswith("schema") for p in loaded.problems)  # the schema says what is wrong


def test_an_email_template_is_an_email_template(tmp_path: Path) -> None:
    make(tmp_path, "welcome", _email("email"), {"steps/email_1/body.html": " \n"})
    (problem,) = load(tmp_path, "welcome").problems
    assert problem.code == "body-empty"
    assert "; an email template needs a body" in problem.message


# --- 2. FIFOs, sockets and devices ----------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_body_is_refused_without_opening_it(tmp_path: Path) -> None:
    text = _email("email")
    directory = make(tmp_path, "welcome", text)
    (directory / "steps" / "email_1").mkdir(parents=True)
    os.mkfifo(directory / "steps" / "email_1" / "body.html")
    loaded = _finishes(lambda: load(tmp_path, "welcome"))
    (problem,) = loaded.problems
    assert problem.code == "pointer-not-regular"
    assert "not a regular file" in problem.message
    assert (problem.line, problem.column) == pos(text, '"steps/email_1/body.html"')


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_notiflow_json_is_refused_without_opening_it(tmp_path: Path) -> None:
    directory = tmp_path / ROOT / "welcome"
    directory.mkdir(parents=True)
    os.mkfifo(directory / "notiflow.json")
    loaded = _finishes(lambda: load(tmp_path, "welcome"))
    assert codes(loaded) == ["notiflow-json-not-regular"]
    assert "not a regular file" in loaded.problems[0].message


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs unix sockets")
def test_sockets_and_devices_are_special(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        tree = WorkTree(tmp_path)
        assert tree.kind("sock") is EntryKind.SPECIAL
    if Path("/dev/null").exists():
        assert WorkTree(Path("/dev")).kind("null") is EntryKind.SPECIAL
    (tmp_path / "file").write_text("x")
    assert tree.kind("file") is EntryKind.FILE


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_reading_a_fifo_directly_fails_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    done: list[BaseException] = []

    def read() -> None:
        try:
            WorkTree(tmp_path).read_bytes("pipe")
        except OSError as exc:
            done.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    assert done and "not a regular file" in str(done[0])


# --- 6. oversized files are refused before they are read -------------------------------------------


def _peak_bytes(fn: Callable[[], LoadedNotiflow]) -> tuple[LoadedNotiflow, int]:
    tracemalloc.start()
    try:
        loaded = fn()
        return loaded, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_body_is_refused_by_its_size_unread(tmp_path: Path) -> None:
    text = _email("email")
    directory = make(tmp_path, "welcome", text)
    body = directory / "steps" / "email_1" / "body.html"
    body.parent.mkdir(parents=True)
    with body.open("wb") as handle:
        handle.truncate(1536 * 1024 * 1024)  # sparse: 1.5 GB that takes no disk space
    loaded, peak = _peak_bytes(lambda: load(tmp_path, "welcome"))
    (problem,) = loaded.problems
    assert problem.code == "pointer-too-large"
    assert "1,610,612,736 bytes" in problem.message
    assert peak < 1024 * 1024  # not even the 4 MiB limit was read


def test_a_huge_notiflow_json_is_refused_unread(tmp_path: Path) -> None:
    directory = tmp_path / ROOT / "welcome"
    directory.mkdir(parents=True)
    with (directory / "notiflow.json").open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    loaded, peak = _peak_bytes(lambda: load(tmp_path, "welcome"))
    assert codes(loaded) == ["notiflow-json-too-large"] and peak < 1024 * 1024


class _SizedMemTree(MemTree):
    def size(self, path: str) -> int:
        entry = self.entries[path]
        assert isinstance(entry, bytes)
        return len(entry)


def test_read_capped_checks_the_size_first_where_the_tree_knows_it(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    tree = WorkTree(tmp_path)
    assert read_capped(tree, "f", 100) == b"x" * 100
    with pytest.raises(FileTooLarge) as info:
        read_capped(tree, "f", 99)
    assert info.value.size == 100
    sized = _SizedMemTree({"f": b"x" * 100})
    with pytest.raises(FileTooLarge):
        read_capped(sized, "f", 99)
    assert sized.reads == []  # refused by its size
    plain = MemTree({"f": b"x" * 100})  # a tree that cannot tell sizes is read, then measured
    with pytest.raises(FileTooLarge):
        read_capped(plain, "f", 99)
    assert plain.reads == ["f"]


# --- 8a. a variable's own position inside a JSON string ---------------------------------------------


def test_each_unset_variable_is_located_at_its_own_reference_past_escapes(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "name": "a\\n\\"b\\" \\u00e9 \\ud83d\\ude00 ${FIRST_UNSET} and \\t ${SECOND_UNSET}",\n'
        '  "steps": []\n'
        "}\n"
    )
    make(tmp_path, "welcome", text)
    loaded = load(tmp_path, "welcome")
    got = [(p.code, p.line, p.column) for p in loaded.problems]
    assert got == [("env-unset", *pos(text, "${FIRST_UNSET}")), ("env-unset", *pos(text, "${SECOND_UNSET}"))]
    assert pos(text, "${FIRST_UNSET}") == (2, 41)  # the string opens at column 11


def test_a_reference_written_with_escapes_is_located_at_the_escape(tmp_path: Path) -> None:
    text = '{"name": "x \\u0024{UNSET_X}", "steps": []}'
    make(tmp_path, "welcome", text)
    (problem,) = load(tmp_path, "welcome").problems
    assert (problem.code, problem.line, problem.column) == ("env-unset", *pos(text, "\\u0024"))


# --- 11. directory names that are not UTF-8 ---------------------------------------------------------


def _non_utf8_dir(tmp_path: Path) -> None:
    root = tmp_path / ROOT
    root.mkdir(parents=True)
    try:
        os.mkdir(os.fsencode(root) + b"/caf\xe9")
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    (root / "welcome").mkdir()


def test_a_directory_name_that_is_not_utf8_is_an_invalid_printable_handle(tmp_path: Path) -> None:
    _non_utf8_dir(tmp_path)
    handles = list_handles(WorkTree(tmp_path), ROOT)
    assert handles == ["caf\\xe9", "welcome"]
    loaded = load(tmp_path, handles[0])
    (problem,) = loaded.problems
    assert problem.code == "handle-invalid" and "not valid UTF-8" in problem.message
    for text in (loaded.handle, loaded.path, loaded.file, problem.file, problem.message, problem.hint):
        text.encode("utf-8")  # no surrogate escapes: every report can print it
    assert loaded.handle == "caf\\xe9"


def test_a_surrogate_escaped_handle_passed_directly_is_made_printable() -> None:
    tree = MemTree({})
    loaded = load_notiflow(tree, notiflows_root=ROOT, handle="caf\udce9", env={})
    assert loaded.handle == "caf\\xe9" and loaded.path == f"{ROOT}/caf\\xe9"
    assert codes(loaded) == ["handle-invalid"] and tree.reads == []
    loaded.problems[0].render().encode("utf-8")
