"""Schema-invalid values never crash loading or validation: the corpus, one value replaced at a time.

Every JSON value of every valid corpus notiflow (the document itself included) is replaced in turn
by each of [], {}, null, 1.5, true and "x"; loading (pointers, substitution) and the checks must
still return problems, never raise. Half the replacements run with every extracted file blank, so
the empty-body checks (which look up the channel type) run on the replaced values too.

The JSON Schema check is what costs (jsonschema walks every branch of an invalid document): every
seventh case runs it, rotating over the replacements; the others run the format rules alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from json_mutations import REPLACEMENTS, json_paths, replaced

from notiflows_deploy.jsonpos import ParsedJson
from notiflows_deploy.loader import load_notiflow
from notiflows_deploy.model import Problem
from notiflows_deploy.rules import check_rules
from notiflows_deploy.schema.store import SchemaStore
from notiflows_deploy.validate import DocumentChecker
from tests.loader_helpers import ROOT, MemTree

CORPUS = Path(__file__).parent / "corpus" / "valid"
HANDLES = sorted(p.name for p in CORPUS.iterdir())



SCHEMA_EVERY = 7  # coprime with the 6 replacements, so the schema sees each of them


class RulesOnly:
    """The format rules without the JSON Schema, located like `DocumentChecker` does."""

    def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]:
        return [
            Problem(file, *parsed.locate(f.path, key=f.key), f.code, f.message, f.severity, f.hint)
            for f in check_rules(parsed.value, raw=parsed.raw_strings)
        ]


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    return SchemaStore(fetch=False).checker_for(None)[0]


def _files(directory: Path, handle: str) -> dict[str, bytes | tuple[str, str]]:
    return {
        f"{ROOT}/{handle}/{p.relative_to(directory).as_posix()}": p.read_bytes()
        for p in directory.rglob("*") if p.is_file() and p.name != "notiflow.json"
    }


@pytest.mark.parametrize("handle", HANDLES)
def test_no_replaced_value_makes_loading_or_validation_raise(checker: DocumentChecker, handle: str) -> None:
    directory = CORPUS / handle
    text = (directory / "notiflow.json").read_text(encoding="utf-8")
    document = json.loads(text)
    files = _files(directory, handle)
    blank = dict.fromkeys(files, b"")
    env = {name: "value" for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)}
    baseline = load_notiflow(MemTree({**files, f"{ROOT}/{handle}/notiflow.json": text.encode()}),
                             notiflows_root=ROOT, handle=handle, env=env, checker=checker)
    assert baseline.ok, [p.render() for p in baseline.problems]
    rules_only = RulesOnly()
    case = 0
    for path in json_paths(document):
        for index, new in enumerate(REPLACEMENTS):
            mutated = json.dumps(replaced(document, path, new))
            extracted = blank if index % 2 == 0 else files
            tree = MemTree({**extracted, f"{ROOT}/{handle}/notiflow.json": mutated.encode()})
            loaded = load_notiflow(tree, notiflows_root=ROOT, handle=handle, env=env,
                                   checker=checker if case % SCHEMA_EVERY == 0 else rules_only)
            for problem in loaded.problems:
                assert problem.line >= 1 and problem.column >= 1, (path, new, problem)
                problem.render()
            if loaded.errors:
                assert loaded.payload is None
            case += 1
    assert case >= len(REPLACEMENTS)
