from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notiflows_deploy.changes import ChangeSet, PathChange, map_changes, normalise_prefix

NF = ".notiflows/notiflows"


def run(changes: list[PathChange], prefix: str = "", nf_dir: str = ".notiflows",
        at_head: set[str] | None = None) -> ChangeSet:
    exists = None if at_head is None else at_head.__contains__
    return map_changes(changes, project_prefix=prefix, notiflows_dir=nf_dir, exists_at_head=exists)


def test_extracted_file_marks_handle_changed() -> None:
    cs = run([PathChange("M", f"{NF}/welcome/steps/email_1/body.html")], at_head={"welcome"})
    assert cs.changed == {"welcome"} and not cs.removed and not cs.everything
    assert "body.html" in cs.reasons["welcome"]


def test_new_notiflow() -> None:
    cs = run([PathChange("A", f"{NF}/new-one/notiflow.json"), PathChange("A", f"{NF}/new-one/steps/sms_1/body.txt")])
    assert cs.changed == {"new-one"}


def test_deleted_directory_is_removed() -> None:
    cs = run([PathChange("D", f"{NF}/gone/notiflow.json"), PathChange("D", f"{NF}/gone/steps/email_1/body.html")],
             at_head=set())
    assert cs.removed == {"gone"} and not cs.changed


def test_removed_needs_no_callback() -> None:
    cs = run([PathChange("D", f"{NF}/gone/notiflow.json")])
    assert cs.removed == {"gone"}


def test_renamed_directory_is_removal_plus_new() -> None:
    cs = run([PathChange("R", f"{NF}/new-name/notiflow.json", f"{NF}/old-name/notiflow.json"),
              PathChange("R", f"{NF}/new-name/steps/email_1/body.html", f"{NF}/old-name/steps/email_1/body.html")])
    assert cs.changed == {"new-name"} and cs.removed == {"old-name"}
    assert "old-name" in cs.reasons["new-name"]


def test_renamed_body_only_within_notiflow() -> None:
    cs = run([PathChange("R", f"{NF}/a/steps/e2/body.html", f"{NF}/a/steps/e1/body.html"),
              PathChange("M", f"{NF}/a/notiflow.json")])
    assert cs.changed == {"a"} and not cs.removed


def test_config_change_means_everything() -> None:
    cs = run([PathChange("M", "notiflows.json")])
    assert cs.everything and "notiflows.json" in cs.reasons


def test_everything_reason_is_only_the_config_reason() -> None:
    """The run's notes take `everything_reason`; per-handle reasons stay with their handles."""
    cs = run([PathChange("M", f"{NF}/a/notiflow.json"), PathChange("M", "notiflows.json")])
    assert cs.everything_reason == "notiflows.json changed (M): every notiflow counts"
    assert cs.reasons["a"] == "notiflow.json changed"
    assert run([PathChange("M", f"{NF}/a/notiflow.json")]).everything_reason == ""


def test_config_in_subdirectory_prefix() -> None:
    changes = [PathChange("M", "apps/web/notiflows.json"), PathChange("M", "notiflows.json"),
               PathChange("M", f"apps/web/{NF}/x/notiflow.json"), PathChange("M", f"{NF}/y/notiflow.json")]
    cs = run(changes, prefix="apps/web")
    assert cs.everything and cs.changed == {"x"}
    cs2 = run(changes[2:], prefix="apps/web/")
    assert not cs2.everything and cs2.changed == {"x"}


def test_paths_outside_tree_ignored() -> None:
    cs = run([PathChange("M", "README.md"), PathChange("M", ".notiflows/other/x.json"),
              PathChange("A", f"{NF}/README.md"), PathChange("M", ".notiflows/notiflows.json"),
              PathChange("M", f"{NF}x/y/notiflow.json")])
    assert cs == ChangeSet()


def test_custom_notiflows_dir() -> None:
    cs = run([PathChange("M", "config/nf/notiflows/a/notiflow.json"), PathChange("M", f"{NF}/b/notiflow.json")],
             nf_dir="./config/nf/")
    assert cs.changed == {"a"}


def test_stray_directory_without_notiflow_json() -> None:
    cs = run([PathChange("A", f"{NF}/stray/notes.txt")], at_head=set())
    assert cs.strays == {"stray"} and not cs.changed and not cs.removed


def test_callback_only_asked_when_needed() -> None:
    asked: list[str] = []

    def exists(handle: str) -> bool:
        asked.append(handle)
        return True

    map_changes([PathChange("M", f"{NF}/a/notiflow.json"), PathChange("M", f"{NF}/b/steps/x/body.md"),
                 PathChange("D", f"{NF}/c/notiflow.json")],
                project_prefix="", notiflows_dir=".notiflows", exists_at_head=exists)
    assert asked == ["b"]


def test_misnamed_notiflow_json_is_a_stray_not_a_removal() -> None:
    # git mv c/notiflow.json c/notiflows.json: the directory is still there at head, so it is invalid.
    cs = run([PathChange("R", f"{NF}/c/notiflows.json", f"{NF}/c/notiflow.json")], at_head=set())
    assert cs.strays == {"c"} and not cs.removed and not cs.changed


def test_rename_out_of_tree_removes() -> None:
    cs = run([PathChange("R", "archive/a/notiflow.json", f"{NF}/a/notiflow.json")])
    assert cs.removed == {"a"} and not cs.changed


def test_copy_keeps_source() -> None:
    cs = run([PathChange("C", f"{NF}/b/notiflow.json", f"{NF}/a/notiflow.json")])
    assert cs.changed == {"b"}
    assert not cs.removed


@pytest.mark.parametrize("raw,expected", [("", ""), (".", ""), ("/", ""), ("a", "a/"), ("a/b/", "a/b/"),
                                          ("./a//b", "a/b/"), ("a\\b", "a/b/")])
def test_normalise_prefix(raw: str, expected: str) -> None:
    assert normalise_prefix(raw) == expected


# -- property: the mapping agrees with the definition on arbitrary before/after file sets ----------

_FILES = ["notiflow.json", "steps/email_1/body.html", "steps/sms_1/body.txt"]
_snapshot = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(_FILES)), st.sampled_from(["x", "y"]), max_size=9,
)


@given(_snapshot, _snapshot)
def test_mapping_matches_definition(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> None:
    def path(key: tuple[str, str]) -> str:
        return f"{NF}/{key[0]}/{key[1]}"

    changes = [PathChange("D", path(k)) for k in before if k not in after]
    changes += [PathChange("A", path(k)) for k in after if k not in before]
    changes += [PathChange("M", path(k)) for k in after if k in before and before[k] != after[k]]
    at_head = {h for (h, f) in after if f == "notiflow.json"}
    at_base = {h for (h, f) in before if f == "notiflow.json"}
    touched = {c.path.split("/")[2] for c in changes}
    kept = {c.path.split("/")[2] for c in changes if c.status != "D"}  # the diff shows a file there at head
    cs = run(changes, at_head=at_head)
    assert cs.changed == touched & at_head
    assert cs.removed == (touched & at_base) - at_head - kept
    assert cs.strays == touched - at_head - cs.removed
