"""Drift through the real command line against the emulator: --history-depth and the report's
drift fields (commits_behind_total, run notes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Cli, make_repo, set_body
from emulator_support import TOKEN, running_emulator

from notiflows_deploy.cli import build_parser, main


def test_history_depth_zero_means_no_history_search(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "one")
    with running_emulator() as em:
        cli = Cli(em.base_url, tmp_path, token=TOKEN)
        assert cli("deploy", repo.path, "--all").code == 0
        set_body(repo, "one", "<p>one v2</p>\n")
        repo.commit("one v2")
        searched = cli("drift", repo.path)
        unsearched = cli("drift", repo.path, "--history-depth", "0")
        one_deep = cli("drift", repo.path, "--history-depth", "1")
    one = searched.by_handle["one"]
    assert searched.code == 2 and one["status"] == "undeployed"
    assert one["commits_behind"] == 1 and one["commits_behind_total"] == 1
    notes = searched.report["notes"]
    assert any(n.startswith("unpublished changes:") for n in notes)  # deployed, not published
    # Range notes are for plan/deploy: drift compares head with the server, every notiflow.
    assert not [n for n in notes if "HEAD~1" in n or "--all" in n], notes
    # 0 is honoured (it used to become 1): every difference is edited-remotely, and says why.
    zero = unsearched.by_handle["one"]
    assert zero["status"] == "edited-remotely" and "no git history was searched" in zero["detail"]
    # N searches N commits behind head: 1 finds the revision 1 behind (it used to need 2).
    assert one_deep.by_handle["one"]["status"] == "undeployed"
    assert one_deep.by_handle["one"]["commits_behind"] == 1


@pytest.mark.parametrize("value", ["-1", "-50", "many"])
def test_history_depth_refuses_negatives_and_words(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["drift", "--history-depth", value, "--format", "text"], {})
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "--history-depth" in err and value in err


def test_history_depth_parses_zero_and_keeps_the_default() -> None:
    parser = build_parser()
    assert parser.parse_args(["drift", "--history-depth", "0"]).history_depth == 0
    assert parser.parse_args(["drift"]).history_depth == 50


def test_a_failed_listing_is_exit_5_and_every_repo_notiflow_still_gets_a_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "one", "two")
    with running_emulator() as em:
        cli = Cli(em.base_url, tmp_path, token=TOKEN)
        assert cli("deploy", repo.path, "--all").code == 0
        set_body(repo, "two", "<p>two v2</p>\n")
        repo.commit("two v2")
        em.fail_next("GET", r"/notiflows$", status=503, count=50)
        run = cli("drift", repo.path, env=cli.env(NOTIFLOWS_DEPLOY_BACKOFF_BASE="0"))
    assert run.code == 5 and run.report["result"] == "failed"
    assert run.by_handle["one"]["status"] == "in-sync" and run.by_handle["two"]["status"] == "undeployed"
    (failure,) = run.report["failures"]
    assert failure.startswith("listing the server's notiflows failed")
    assert any("could not be looked for" in n or "remote-only" in n for n in run.report["notes"])
