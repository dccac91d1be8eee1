from __future__ import annotations

import io

import pytest

from notiflows_deploy.github import masking


@pytest.fixture(autouse=True)
def _fresh() -> None:
    masking.reset()


def test_masks_token_once() -> None:
    out = io.StringIO()
    assert masking.mask("nf_at_abcdef123456", out)
    masking.mask("nf_at_abcdef123456", out)
    assert out.getvalue() == "::add-mask::nf_at_abcdef123456\n"
    assert masking.contains_masked("x nf_at_abcdef123456 y")


def test_short_and_empty_values_are_skipped_silently() -> None:
    out = io.StringIO()
    assert not masking.mask("abc", out)
    assert not masking.mask("", out)
    assert not masking.mask(None, out)
    assert out.getvalue() == ""


def test_multiline_secret_is_escaped_and_lines_masked() -> None:
    out = io.StringIO()
    masking.mask("-----BEGIN KEY-----\nabcd%efgh\nxy\n-----END KEY-----", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "::add-mask::-----BEGIN KEY-----%0Aabcd%25efgh%0Axy%0A-----END KEY-----"
    assert "::add-mask::abcd%25efgh" in lines
    assert "::add-mask::xy" not in lines  # too short to mask alone
    assert all(line.startswith("::add-mask::") for line in lines)
