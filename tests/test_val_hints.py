"""Every problem has a hint: the whole invalid corpus, loaded like the CLI loads it.

The README promises "a message and a hint" for every problem. Each case of tests/corpus/invalid is
copied into a repository and loaded with the bundled schema; every problem must carry a non-empty hint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from notiflows_deploy.files import WorkTree
from notiflows_deploy.loader import load_notiflow
from notiflows_deploy.model import Problem
from notiflows_deploy.schema.store import SchemaStore
from notiflows_deploy.validate import DocumentChecker
from tests.loader_helpers import MemTree

CORPUS = Path(__file__).parent / "corpus"
CASES = [("invalid", p.name) for p in sorted((CORPUS / "invalid").iterdir())]
ROOT = ".notiflows/notiflows"


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def _load(tmp_path: Path, kind: str, case: str, checker: DocumentChecker) -> list[Problem]:
    shutil.copytree(CORPUS / kind / case, tmp_path / ROOT / "flow")
    loaded = load_notiflow(WorkTree(tmp_path), notiflows_root=ROOT, handle="flow", env={}, checker=checker)
    return loaded.problems


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_every_problem_of_the_invalid_corpus_has_a_hint(
    tmp_path: Path, checker: DocumentChecker, kind: str, case: str
) -> None:
    problems = _load(tmp_path, kind, case, checker)
    assert problems, "an invalid case must yield a problem"
    for problem in problems:
        assert problem.hint.strip(), f"{case}: {problem.code} has no hint ({problem.message})"


def test_the_corpus_covers_the_codes_that_had_no_hint() -> None:
    """The codes the audit found without a hint all occur in the corpus the test above runs."""
    codes = {
        e["code"]
        for kind, case in CASES
        for e in json.loads((CORPUS / kind / case / "expected.json").read_text(encoding="utf-8"))
    }
    assert {"schema-range", "schema-count", "schema-length", "schema-type", "schema-dependency",
            "trigger-position", "end-position", "parent-not-condition", "template-channel-mismatch",
            "condition-depth", "json-syntax", "schema-enum", "schema-required"} <= codes


def _pointer_doc(pointer: object) -> bytes:
    return json.dumps({"name": "Flow", "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "sms_1", "type": "channel", "position": 1, "channel_type": "sms",
         "template": {"channel_type": "sms", "data": {"content_type": "plaintext", "body@": pointer}}},
        {"handle": "end", "type": "end", "position": 2}]}).encode()


@pytest.mark.parametrize(
    ("pointer", "extra", "code"),
    [
        ("steps/a\x00.txt", {}, "pointer-invalid"),
        (".", {}, "pointer-not-file"),
        ("steps/file.txt/x.txt", {"steps/file.txt": b"x"}, "pointer-not-file"),
        ("steps", {"steps/x.txt": b"x"}, "pointer-not-file"),
        ("steps\\x.txt", {}, "pointer-backslash"),
        ("/etc/passwd", {}, "pointer-absolute"),
        ("../other/x.txt", {}, "pointer-escapes"),
        ("steps/missing.txt", {}, "pointer-missing"),
        ("steps/link.txt", {"steps/link.txt": ("link", "/etc/passwd")}, "pointer-symlink-escapes"),
        ("steps/a.txt", {"steps/a.txt": ("link", "b.txt"), "steps/b.txt": ("link", "a.txt")}, "pointer-symlink-loop"),
        (5, {}, "pointer-not-string"),
    ],
)
def test_every_pointer_problem_has_a_hint(pointer: object, extra: dict[str, bytes | tuple[str, str]],
                                          code: str) -> None:
    base = f"{ROOT}/flow"
    tree = MemTree({f"{base}/notiflow.json": _pointer_doc(pointer), **{f"{base}/{k}": v for k, v in extra.items()}})
    loaded = load_notiflow(tree, notiflows_root=ROOT, handle="flow", env={})
    assert code in [p.code for p in loaded.problems]
    for problem in loaded.problems:
        assert problem.hint.strip(), f"{problem.code} has no hint ({problem.message})"
