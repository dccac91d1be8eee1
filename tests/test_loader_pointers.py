"""The loader's `KEY@` pointers: resolution, refusals (with positions), symlinks, extracted-file checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import ROOT, MemTree, codes, load, make, pos, write

from notiflows_deploy.loader import MAX_LINK_HOPS, load_notiflow


def doc(pointer: Any, *, channel: str = "email", key: str = "body@", extra: str = "") -> str:
    # The pointer's value is always at line 12, column 20.
    return (
        "{\n"
        '  "name": "p",\n'
        '  "steps": [\n'
        "    {\n"
        '      "handle": "step_1",\n'
        '      "type": "channel",\n'
        f'      "channel_type": "{channel}",\n'
        '      "template": {\n'
        f'        "channel_type": "{channel}",\n'
        '        "data": {\n'
        f'          "subject": "s",{extra}\n'
        f'          {json.dumps(key)}: {json.dumps(pointer)}\n'
        "        }\n"
        "      }\n"
        "    }\n"
        "  ]\n"
        "}\n"
    )


def body_of(loaded: Any, key: str = "body") -> Any:
    return loaded.payload["steps"][0]["template"]["data"][key]


def refused(base: Path, handle: str, code: str, **kwargs: Any) -> None:
    loaded = load(base, handle, **kwargs)
    assert [(p.code, p.line, p.column) for p in loaded.problems] == [(code, 12, 20)], loaded.problems
    assert loaded.problems[0].file == f"{ROOT}/{handle}/notiflow.json"
    assert loaded.payload is None


def test_doc_position_helper() -> None:
    text = doc("x")
    assert pos(text, '"x"') == (12, 20)


@pytest.mark.parametrize(
    ("pointer", "code"),
    [
        ("/etc/passwd", "pointer-absolute"),
        ("C:/Users/x/body.html", "pointer-absolute"),
        ("c:body.html", "pointer-absolute"),
        ("steps\\step_1\\body.html", "pointer-backslash"),
        ("../other/notiflow.json", "pointer-escapes"),
        ("steps/../../other/body.html", "pointer-escapes"),
        ("steps/step_1/../../..", "pointer-escapes"),
        ("steps/step_1/nope.html", "pointer-missing"),
        ("nope/body.html", "pointer-missing"),
        ("steps/step_1", "pointer-not-file"),
        ("steps/step_1/body.html/x", "pointer-not-file"),
        (".", "pointer-not-file"),
        ("", "pointer-invalid"),
        ("a\x00b", "pointer-invalid"),
        (42, "pointer-not-string"),
        (None, "pointer-not-string"),
        (["steps/step_1/body.html"], "pointer-not-string"),
    ],
)
def test_bad_pointers(tmp_path: Path, pointer: Any, code: str) -> None:
    make(tmp_path, "other", '{"name": "o"}', {"body.html": "<p>other</p>"})
    make(tmp_path, "flow", doc(pointer), {"steps/step_1/body.html": "<p>hi</p>"})
    refused(tmp_path, "flow", code)


def test_dot_segments_inside_are_fine(tmp_path: Path) -> None:
    make(tmp_path, "flow", doc("./steps//x/../step_1/./body.html"), {"steps/step_1/body.html": "<p>hi</p>",
                                                                      "steps/x/keep": ""})
    loaded = load(tmp_path, "flow")
    assert loaded.problems == [] and body_of(loaded) == "<p>hi</p>"


def test_conflict_points_at_the_key(tmp_path: Path) -> None:
    text = doc("steps/step_1/body.html", extra='\n          "body": "inline",')
    make(tmp_path, "both", text, {"steps/step_1/body.html": "<p>hi</p>"})
    loaded = load(tmp_path, "both")
    assert [(p.code, p.line, p.column) for p in loaded.problems] == [("pointer-conflict", 13, 11)]
    assert pos(text, '"body@"') == (13, 11)


def test_bare_at_key(tmp_path: Path) -> None:
    make(tmp_path, "at", doc("steps/step_1/body.html", key="@"), {"steps/step_1/body.html": "x"})
    loaded = load(tmp_path, "at")
    assert [(p.code, p.line, p.column) for p in loaded.problems] == [("pointer-invalid", 12, 11)]


# --- nested pointers and other keys -------------------------------------------------------------


def test_nested_and_raw_body_pointers(tmp_path: Path) -> None:
    notiflow = {
        "name": "hooks",
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {
                "handle": "webhook_1", "type": "channel", "channel_type": "webhook",
                "settings": {"not@": "left alone outside template.data"},
                "template": {
                    "channel_type": "webhook",
                    "data": {
                        "url": "https://${HOOK_HOST}/in",
                        "raw_body@": "steps/webhook_1/body.json",
                        "headers": {"x-sig@": "steps/webhook_1/sig.txt", "x-plain": "p"},
                        "blocks": [{"text@": "steps/webhook_1/block.md"}, "s", 3],
                    },
                },
            },
            {
                "handle": "in_app_1", "type": "channel", "channel_type": "in_app",
                "template": {"data": {"body@": "steps/in_app_1/body.md", "action_url": "/x"}},
            },
        ],
    }
    files = {
        "steps/webhook_1/body.json": '{"event": "${EVENT}"}\n',
        "steps/webhook_1/sig.txt": "sig",
        "steps/webhook_1/block.md": "**block**",
        "steps/in_app_1/body.md": "Hello *${WHO}*",
    }
    make(tmp_path, "hooks", json.dumps(notiflow, indent=2), files)
    loaded = load(tmp_path, "hooks", {"HOOK_HOST": "h.test", "EVENT": "ev", "WHO": "you"})
    assert loaded.problems == []
    assert loaded.payload is not None
    webhook, in_app = loaded.payload["steps"][1], loaded.payload["steps"][2]
    assert webhook["settings"] == {"not@": "left alone outside template.data"}
    assert webhook["template"] == {
        "channel_type": "webhook",
        "data": {
            "url": "https://h.test/in",
            "raw_body": '{"event": "ev"}\n',
            "headers": {"x-sig": "sig", "x-plain": "p"},
            "blocks": [{"text": "**block**"}, "s", 3],
        },
    }
    assert in_app["template"] == {"data": {"body": "Hello *you*", "action_url": "/x"}}
    assert loaded.secret_values == {"h.test", "ev", "you"}


def test_nested_pointer_refusal_position(tmp_path: Path) -> None:
    text = (
        '{"name": "n", "steps": [{"handle": "w", "type": "channel", "template": {"channel_type": "webhook",\n'
        '  "data": {"headers": [{"a@": "../x"}]}}}]}\n'
    )
    make(tmp_path, "nested", text)
    loaded = load(tmp_path, "nested")
    assert [(p.code, p.line, p.column) for p in loaded.problems] == [("pointer-escapes", 2, 31)]
    assert pos(text, '"../x"') == (2, 31)


# --- body checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
@pytest.mark.parametrize("channel", ["email", "sms", "in_app", "chat", "mobile_push", "web_push"])
def test_empty_body_refused(tmp_path: Path, channel: str, content: str) -> None:
    make(tmp_path, "empty", doc("steps/step_1/body.txt", channel=channel), {"steps/step_1/body.txt": content})
    refused(tmp_path, "empty", "body-empty")


def test_empty_body_after_substitution_refused(tmp_path: Path) -> None:
    make(tmp_path, "empty", doc("steps/step_1/body.txt", channel="sms"), {"steps/step_1/body.txt": "${TEXT}\n"})
    refused(tmp_path, "empty", "body-empty", env={"TEXT": " "})


def test_empty_webhook_body_and_empty_other_pointers_are_fine(tmp_path: Path) -> None:
    make(tmp_path, "hook", doc("steps/step_1/body.json", channel="webhook"), {"steps/step_1/body.json": ""})
    assert load(tmp_path, "hook").ok
    make(tmp_path, "raw", doc("steps/step_1/x.txt", key="raw_body@"), {"steps/step_1/x.txt": ""})
    loaded = load(tmp_path, "raw")
    assert loaded.ok and body_of(loaded, "raw_body") == ""


def test_extracted_file_not_utf8_points_into_the_file(tmp_path: Path) -> None:
    make(tmp_path, "bad", doc("steps/step_1/body.html"),
         {"steps/step_1/body.html": "<p>\n  ok é\n  caf".encode() + b"\xe9\xff</p>"})
    loaded = load(tmp_path, "bad", display_prefix="repo/")
    assert [(p.file, p.code, p.line, p.column) for p in loaded.problems] == [
        (f"repo/{ROOT}/bad/steps/step_1/body.html", "pointer-not-utf8", 3, 6)
    ]
    assert loaded.payload is None


def test_extracted_file_too_large(tmp_path: Path) -> None:
    text = doc("steps/step_1/body.html")
    make(tmp_path, "big", text, {"steps/step_1/body.html": "x" * (len(text) + 1)})
    refused(tmp_path, "big", "pointer-too-large", max_bytes=len(text))
    assert "bytes" in load(tmp_path, "big", max_bytes=len(text)).problems[0].message
    assert load(tmp_path, "big", max_bytes=len(text) + 1).ok


def test_extracted_file_bom_stripped(tmp_path: Path) -> None:
    make(tmp_path, "bom", doc("steps/step_1/body.html"), {"steps/step_1/body.html": b"\xef\xbb\xbf<p>x</p>"})
    assert body_of(load(tmp_path, "bom")) == "<p>x</p>"


def test_every_problem_found_in_one_pass(tmp_path: Path) -> None:
    notiflow = {"name": "${NOPE}", "steps": [
        {"handle": f"s{i}", "type": "channel", "template": {"channel_type": "sms", "data": {"body@": p}}}
        for i, p in enumerate(["/abs", "../up", "missing.txt", "empty.txt", "ok.txt"])
    ]}
    make(tmp_path, "many", json.dumps(notiflow, indent=1), {"empty.txt": "", "ok.txt": "${ALSO_NOPE}"})
    loaded = load(tmp_path, "many")
    assert sorted(codes(loaded)) == sorted([
        "env-unset", "pointer-absolute", "pointer-escapes", "pointer-missing", "body-empty", "env-unset"])


# --- symlinks -------------------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """flow/ with real files; other/ beside it holding a 'secret'."""
    make(tmp_path, "other", '{"name": "o"}', {"secret.html": "<p>secret</p>", "steps/step_1/body.html": "<p>s</p>"})
    make(tmp_path, "flow", doc("steps/step_1/body.html"), {"shared/real.html": "<p>shared</p>",
                                                             "shared/deeper/x.html": "<p>deep</p>"})
    (tmp_path / ROOT / "flow" / "steps" / "step_1").mkdir(parents=True)
    return tmp_path


def link(base: Path, rel: str, target: str) -> None:
    path = base / ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def test_file_symlink_inside_is_followed(linked: Path) -> None:
    link(linked, "flow/steps/step_1/body.html", "../../shared/real.html")
    loaded = load(linked, "flow")
    assert loaded.problems == [] and body_of(loaded) == "<p>shared</p>"


def test_symlink_chain_inside_is_followed(linked: Path) -> None:
    link(linked, "flow/steps/step_1/body.html", "hop1.html")
    link(linked, "flow/steps/step_1/hop1.html", "../../shared/./deeper/../hop2")
    link(linked, "flow/shared/hop2", "deeper/x.html")
    loaded = load(linked, "flow")
    assert loaded.problems == [] and body_of(loaded) == "<p>deep</p>"


def test_directory_symlink_inside_is_followed(linked: Path) -> None:
    (linked / ROOT / "flow" / "steps" / "step_1").rmdir()
    link(linked, "flow/steps/step_1", "../shared")
    write(linked / ROOT / "flow", "shared/body.html", "<p>via dir link</p>")
    loaded = load(linked, "flow")
    assert loaded.problems == [] and body_of(loaded) == "<p>via dir link</p>"


@pytest.mark.parametrize(
    ("rel", "target"),
    [
        ("flow/steps/step_1/body.html", "../../../other/secret.html"),  # the file itself
        ("flow/steps/step_1/body.html", "/etc/hostname"),  # absolute target
        ("flow/steps/step_1/body.html", "../../shared/../../other/secret.html"),  # out via a detour
        ("flow/steps/step_1/body.html", "../../shared/up"),  # a second link leads out
    ],
)
def test_file_symlink_outside_refused(linked: Path, rel: str, target: str) -> None:
    link(linked, "flow/shared/up", "../../other/secret.html")
    link(linked, rel, target)
    refused(linked, "flow", "pointer-symlink-escapes")


def test_directory_symlink_outside_refused(linked: Path) -> None:
    (linked / ROOT / "flow" / "steps" / "step_1").rmdir()
    (linked / ROOT / "flow" / "steps").rmdir()
    link(linked, "flow/steps", "../other/steps")  # the file under it is a real file, the way is not
    refused(linked, "flow", "pointer-symlink-escapes")


def test_symlink_loop_and_dangling_and_to_directory(linked: Path) -> None:
    link(linked, "flow/steps/step_1/body.html", "loop.html")
    link(linked, "flow/steps/step_1/loop.html", "body.html")
    refused(linked, "flow", "pointer-symlink-loop")
    assert str(MAX_LINK_HOPS) in load(linked, "flow").problems[0].message
    for name in ("body.html", "loop.html"):
        (linked / ROOT / "flow" / "steps" / "step_1" / name).unlink()
    link(linked, "flow/steps/step_1/body.html", "missing.html")
    refused(linked, "flow", "pointer-missing")
    (linked / ROOT / "flow" / "steps" / "step_1" / "body.html").unlink()
    link(linked, "flow/steps/step_1/body.html", "../../shared")
    refused(linked, "flow", "pointer-not-file")


def test_long_chain_within_bound_is_fine() -> None:
    base = f"{ROOT}/flow"
    entries: dict[str, bytes | tuple[str, str]] = {f"{base}/notiflow.json": doc("l0").encode(),
                                                   f"{base}/real.html": b"<p>end</p>"}
    for i in range(MAX_LINK_HOPS):
        entries[f"{base}/l{i}"] = ("link", f"l{i + 1}" if i + 1 < MAX_LINK_HOPS else "real.html")
    loaded = load_notiflow(MemTree(entries), notiflows_root=ROOT, handle="flow", env={})
    assert loaded.problems == [] and body_of(loaded) == "<p>end</p>"


def test_not_utf8_via_symlink_reports_the_real_file(linked: Path) -> None:
    write(linked / ROOT / "flow", "shared/bad.html", b"\xff")
    link(linked, "flow/steps/step_1/body.html", "../../shared/bad.html")
    [problem] = load(linked, "flow").problems
    assert (problem.file, problem.line, problem.column) == (f"{ROOT}/flow/shared/bad.html", 1, 1)


def test_conflict_already_reported_by_the_checker_is_not_repeated(tmp_path: Path) -> None:
    from notiflows_deploy.jsonpos import ParsedJson
    from notiflows_deploy.model import Problem

    class ConflictChecker:
        def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]:
            line, column = parsed.locate(("steps", 0, "template", "data", "body@"), key=True)
            return [Problem(file, line, column, "schema-conflict", "both")]

    text = doc("steps/step_1/body.html", extra='\n          "body": "inline",')
    make(tmp_path, "both", text, {"steps/step_1/body.html": "<p>hi</p>"})
    loaded = load(tmp_path, "both", checker=ConflictChecker(), display_prefix="sub")
    assert [(p.file, p.code, p.line, p.column) for p in loaded.problems] == [
        (f"sub/{ROOT}/both/notiflow.json", "schema-conflict", 13, 11)
    ]
    assert loaded.path == f"sub/{ROOT}/both"
