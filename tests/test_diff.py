"""diff: semantic diffs (exact renderings), summaries, secret masking and the three-way conflict view."""

from __future__ import annotations

import copy
import random
from typing import Any

from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.diff import mask, secret_paths_from_payload, semantic_diff, three_way
from notiflows_deploy.normalize import content_from_remote


def old_content() -> dict[str, Any]:
    return {
        "name": "Welcome",
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "channel_type": "email", "position": 1,
             "template": {"channel_type": "email",
                          "data": {"subject": "Welcome", "body": "<p>Hi</p>\n<p>there</p>\n<p>bye</p>\n"}}},
            {"handle": "wait_1", "type": "wait", "position": 2, "settings": {"duration": 1, "duration_unit": "days"}},
            {"handle": "end", "type": "end", "position": 3},
        ],
    }


def new_content() -> dict[str, Any]:
    new = old_content()
    new["name"] = "Welcome!"
    del new["active"]  # omitted by the repo: left as it is on the server, so not a change
    data = new["steps"][1]["template"]["data"]
    data["subject"] = "Welcome!"
    data["body"] = "<p>Hi</p>\n<p>there!</p>\n<p>bye</p>\n"
    new["steps"][2] = {"handle": "sms_1", "type": "channel", "channel_type": "sms", "position": 2,
                       "template": {"channel_type": "sms", "data": {"body": "Hi!"}}}
    return new


EXPECTED = """\
~ name: "Welcome" -> "Welcome!"
~ step email_1 (channel/email)
    template.data.body:
      --- server@v3
      +++ repo@head
      @@ -1,3 +1,3 @@
       <p>Hi</p>
      -<p>there</p>
      +<p>there!</p>
       <p>bye</p>
    template.data.subject: "Welcome" -> "Welcome!"
+ step sms_1 (channel/sms)
    channel_type: "sms"
    position: 2
    template.channel_type: "sms"
    template.data.body: "Hi!"
    type: "channel"
- step wait_1 (wait)"""


def test_render_exact() -> None:
    diff = semantic_diff(old_content(), new_content(), old_label="server@v3", new_label="repo@head")
    assert diff.render() == EXPECTED
    assert diff.summary() == "name changed; 1 step changed, 1 added, 1 removed"
    assert not diff.is_empty


def test_render_is_stable_whatever_the_step_order() -> None:
    shuffled = new_content()
    random.Random(4).shuffle(shuffled["steps"])
    diff = semantic_diff(old_content(), shuffled, old_label="server@v3", new_label="repo@head")
    assert diff.render() == EXPECTED


def test_moves_and_renames_are_counted_separately() -> None:
    new = old_content()
    new["steps"][1]["position"], new["steps"][2]["position"] = 2, 1
    diff = semantic_diff(old_content(), new)
    assert diff.render() == (
        "~ step wait_1 (wait)\n    position: 2 -> 1\n~ step email_1 (channel/email)\n    position: 1 -> 2"
    )
    assert diff.summary() == "2 steps moved"
    new["steps"][1]["template"]["data"]["subject"] = "x"
    assert semantic_diff(old_content(), new).summary() == "1 step changed, 1 moved"


def test_branch_change_is_a_move_with_dotted_paths_for_nested_fields() -> None:
    old: dict[str, Any] = {"steps": [{"handle": "c", "type": "condition", "position": 1,
                      "settings": {"branches": [{"handle": "a", "conditions": [{"property": "data.plan",
                                                                                "value": "pro"}]}]}},
                     {"handle": "e", "type": "end", "position": 0, "parent_step_handle": "c", "branch_handle": "a"}]}
    new = copy.deepcopy(old)
    new["steps"][0]["settings"]["branches"][0]["conditions"][0]["value"] = "team"
    new["steps"][1]["branch_handle"] = "b"
    diff = semantic_diff(old, new)
    assert diff.render() == (
        "~ step e (end)\n    branch_handle: \"a\" -> \"b\"\n"
        "~ step c (condition)\n    settings.branches[0].conditions[0].value: \"pro\" -> \"team\""
    )


def test_volatile_server_fields_never_show() -> None:
    steps = copy.deepcopy(old_content()["steps"])
    for i, s in enumerate(steps):
        s.update(id=f"s{i}", inserted_at="2026-01-01T00:00:00Z", updated_at="2026-02-01T00:00:00Z",
                 notiflow_id="n", parent_step_handle=None, conditions=[], provider_settings={})
    remote = RemoteNotiflow.from_json({
        "handle": "welcome", "name": "Welcome", "active": True, "include_in_preferences": True,
        "current_version": {"sha": "f00", "version_number": 9, "status": "draft", "valid": True, "id": "v",
                            "inserted_at": "2026-01-01T00:00:00Z", "steps": steps},
    })
    diff = semantic_diff(content_from_remote(remote), old_content())
    assert diff.is_empty
    assert diff.render() == ""
    assert diff.summary() == "no changes"


def test_created_notiflow() -> None:
    new = {"name": "Hi", "steps": [{"handle": "trigger", "type": "trigger", "position": 0},
                                   {"handle": "end", "type": "end", "position": 1}]}
    diff = semantic_diff(None, new, old_label="(none)", new_label="repo@head")
    assert diff.render() == (
        '+ name: "Hi"\n+ step trigger (trigger)\n    position: 0\n    type: "trigger"\n'
        '+ step end (end)\n    position: 1\n    type: "end"'
    )
    assert diff.summary() == "new notiflow with 2 steps"


def test_long_values_become_unified_diffs() -> None:
    long_old = "x" * 90
    headers = {"a": "1" * 50, "b": "2" * 40}
    old: dict[str, Any] = {"steps": [{"handle": "w", "type": "webhook", "position": 1,
                                      "settings": {"k": long_old, "headers": headers}}]}
    new = copy.deepcopy(old)
    new["steps"][0]["settings"]["k"] = long_old + "y"
    new["steps"][0]["settings"]["headers"] = ["a" * 50, "b" * 40]  # not the same shape: whole value compared
    text = semantic_diff(old, new, old_label="A", new_label="B").render()
    assert "settings.k:\n      --- A\n      +++ B\n" in text
    assert f"      -{long_old}\n      +{long_old}y" in text
    assert "settings.headers:\n      --- A\n      +++ B" in text
    assert '      -  "a": "' in text and '      +  "' in text


def test_final_newline_only_change_is_explained() -> None:
    old: dict[str, Any] = {"steps": [{"handle": "s", "type": "channel", "position": 1,
                                      "template": {"data": {"body": "a\nb\n"}}}]}
    new = copy.deepcopy(old)
    new["steps"][0]["template"]["data"]["body"] = "a\nb"
    text = semantic_diff(old, new).render()
    assert "template.data.body: line endings or the final newline differ" in text
    assert "(LF, final newline -> LF, no final newline)" in text


def test_secrets_are_masked_inline_in_text_diffs_and_json_escaped() -> None:
    secret = 'tok"en-123'
    multi = "line-one-secret\nline-two-secret"
    old: dict[str, Any] = {"steps": [{"handle": "s", "type": "channel", "position": 1,
                      "template": {"data": {"body": "hello\nworld\n", "url": "https://x/?k=" + secret}}}]}
    new = copy.deepcopy(old)
    new["steps"][0]["template"]["data"]["body"] = f"hello\n{multi}\nworld\n"
    new["steps"][0]["template"]["data"]["url"] = "https://y/?k=" + secret
    text = semantic_diff(old, new).render(secrets={secret, multi, ""})
    assert "tok" not in text and "line-one-secret" not in text and "line-two-secret" not in text
    assert '"https://x/?k=***" -> "https://y/?k=***"' in text
    assert mask("abc", ["b"]) == "a***c"


def test_three_way_flags_overlap_and_separates_sides() -> None:
    base = old_content()
    repo = copy.deepcopy(base)
    repo["steps"][1]["template"]["data"]["subject"] = "Repo subject"
    repo["steps"][2]["settings"]["duration"] = 2
    server = copy.deepcopy(base)
    server["steps"][1]["template"]["data"]["subject"] = "Dashboard subject"
    server["name"] = "Renamed in dashboard"
    del server["steps"][2]  # wait_1 removed on the server, edited in the repo
    server["steps"][-1]["position"] = 2
    text = three_way(base, repo, server)
    assert text == """\
Changed in the repo since base (2 steps changed):
  ~ step email_1 (channel/email)
      template.data.subject: "Welcome" -> "Repo subject"
  ~ step wait_1 (wait)
      settings.duration: 1 -> 2
Changed on the server since base (name changed; 1 step changed, 1 removed, 1 moved):
  ~ name: "Welcome" -> "Renamed in dashboard"
  ~ step email_1 (channel/email)
      template.data.subject: "Welcome" -> "Dashboard subject"
  ~ step end (end)
      position: 3 -> 2
  - step wait_1 (wait)
Changed on both sides (overlapping):
  ! step email_1 template.data.subject: repo "Repo subject", server "Dashboard subject"
  ! step wait_1: server removed it, repo edited it"""
    # Only the server renamed the notiflow: shown on its side, not flagged as overlapping.
    assert "Renamed" not in text.split("Changed on both sides")[1]


def test_three_way_same_change_both_sides_and_unmanaged_fields() -> None:
    base = {"steps": [{"handle": "t", "type": "trigger", "position": 0}]}
    repo = {"steps": [{"handle": "t", "type": "trigger", "position": 0, "name": "Start"}]}
    server = {"name": "Dash", "active": False, "steps": [{"handle": "t", "type": "trigger", "position": 0,
                                                          "name": "Start"}]}
    text = three_way(base, repo, server)
    assert '! step t name: same change on both sides: "Start"' in text
    assert "Dash" not in text  # the repo does not manage `name`: not shown as a server change


def test_three_way_without_base_falls_back_to_server_to_repo() -> None:
    text = three_way(None, {"name": "B", "steps": []}, {"name": "A", "steps": []}, secrets=["B"])
    assert text.startswith("The base is unknown")
    assert '~ name: "A" -> "***"' in text


def test_three_way_step_added_on_both_sides_compares_its_fields() -> None:
    base: dict[str, Any] = {"steps": [{"handle": "t", "type": "trigger", "position": 0}]}
    sms = {"handle": "sms_1", "type": "channel", "channel_type": "sms", "position": 1,
           "template": {"data": {"body": "Hi"}}}
    repo = copy.deepcopy(base)
    repo["steps"].append(sms)
    server = copy.deepcopy(repo)
    server["steps"][1]["template"]["data"]["body"] = "Hello"
    text = three_way(base, repo, server)
    assert '! step sms_1 template.data.body: repo "Hi", server "Hello"' in text
    assert '! step sms_1 type: same change on both sides: "channel"' in text
    both_removed = three_way(repo, base, base)
    assert "! step sms_1: same change on both sides: removed" in both_removed


# ---- secret locations: a rotated secret's old value is never shown ----------------------------------

OLD_URL = "https://hooks.example.invalid/OLD-secret-1111"
NEW_URL = "https://hooks.example.invalid/NEW-secret-2222"
HOOK_SECRET = frozenset({("webhook_1", ("template", "data", "url"))})


def hook(url: str, *, name: str = "Hook", method: str = "GET", webhook_position: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "webhook_1", "type": "channel", "channel_type": "webhook", "position": webhook_position,
             "template": {"channel_type": "webhook", "data": {"url": url, "method": method}}},
        ],
    }


def test_secret_paths_from_payload_name_steps_by_handle() -> None:
    payload = hook(NEW_URL)
    payload["steps"].reverse()  # order does not matter: the handle does
    paths = [("steps", 0, "template", "data", "url"), ("name",), ("steps", 9, "x")]
    assert secret_paths_from_payload(payload, paths) == frozenset(
        {("webhook_1", ("template", "data", "url")), ("", ("name",))}
    )
    assert secret_paths_from_payload(None, paths) == frozenset()


def test_rotated_secret_is_masked_on_both_sides_and_still_reported() -> None:
    d = semantic_diff(hook(OLD_URL), hook(NEW_URL), old_label="server", new_label="repo", secret_paths=HOOK_SECRET)
    text = d.render()
    assert OLD_URL not in text and NEW_URL not in text
    assert text == ('~ step webhook_1 (channel/webhook)\n'
                    '    template.data.url: "***" -> "***" (changed; the value holds a secret)')
    assert d.summary() == "1 step changed"
    # the change itself is computed on the real values
    [change] = d.steps[0].fields
    assert (change.old, change.new) == (OLD_URL, NEW_URL)


def test_equal_secret_values_are_no_change_and_other_fields_still_show() -> None:
    d = semantic_diff(hook(NEW_URL), hook(NEW_URL, method="POST"), secret_paths=HOOK_SECRET)
    assert d.render() == '~ step webhook_1 (channel/webhook)\n    template.data.method: "GET" -> "POST"'
    assert semantic_diff(hook(NEW_URL), hook(NEW_URL), secret_paths=HOOK_SECRET).is_empty


def test_secret_masked_in_created_added_and_restructured_fields() -> None:
    created = semantic_diff(None, hook(NEW_URL), secret_paths=HOOK_SECRET).render()
    assert NEW_URL not in created and 'template.data.url: "***"' in created
    # the server holds an object where the repo has the secret string (and the step is otherwise new there)
    server = hook(OLD_URL)
    server["steps"][1]["template"]["data"]["url"] = {"value": OLD_URL}
    changed = semantic_diff(server, hook(NEW_URL), secret_paths=HOOK_SECRET).render()
    assert OLD_URL not in changed and NEW_URL not in changed and 'template.data.url: "***" -> "***"' in changed
    # the server lacks the whole data object: the secret inside the added object is masked
    server["steps"][1]["template"] = {"channel_type": "webhook"}
    added = semantic_diff(server, hook(NEW_URL), secret_paths=HOOK_SECRET).render()
    assert NEW_URL not in added and "***" in added
    gone = semantic_diff(hook(OLD_URL), {"name": "Hook", "steps": [hook(OLD_URL)["steps"][0]]},
                         secret_paths=HOOK_SECRET).render()
    assert OLD_URL not in gone


def test_secret_body_long_text_is_not_diffed_line_by_line() -> None:
    old_body = "<p>Hi</p>\n<p>code: OLD-CODE-7777</p>\n" * 5
    new_body = "<p>Hi</p>\n<p>code: NEW-CODE-8888</p>\n" * 5
    secret = frozenset({("email_1", ("template", "data", "body"))})
    old, new = old_content(), old_content()
    old["steps"][1]["template"]["data"]["body"] = old_body
    new["steps"][1]["template"]["data"]["body"] = new_body
    text = semantic_diff(old, new, secret_paths=secret).render()
    assert "OLD-CODE" not in text and "NEW-CODE" not in text
    assert "template.data.body: \"***\" -> \"***\" (changed; the value holds a secret)" in text


def test_top_level_secret_field_is_masked() -> None:
    d = semantic_diff(hook(NEW_URL, name=f"Hook {OLD_URL}"), hook(NEW_URL, name="Hook NEW"),
                      secret_paths={("", ("name",))})
    assert d.render() == '~ name: "***" -> "***" (changed; the value holds a secret)'


def test_three_way_masks_the_secret_on_base_server_and_repo() -> None:
    base_url, server_url = "https://hooks.example.invalid/BASE-secret-0000", OLD_URL
    view = three_way(hook(base_url), hook(NEW_URL), hook(server_url, name="Hook (dashboard)"),
                     secret_paths=HOOK_SECRET)
    for value in (base_url, server_url, NEW_URL):
        assert value not in view
    assert 'template.data.url: "***" -> "***" (changed; the value holds a secret)' in view  # both sides changed it
    overlap = '! step webhook_1 template.data.url: repo "***", server "***" (different values; they hold a secret)'
    assert overlap in view
    same = three_way(hook(base_url), hook(NEW_URL), hook(NEW_URL, name="Hook (dashboard)"), secret_paths=HOOK_SECRET)
    assert NEW_URL not in same and base_url not in same
    assert '! step webhook_1 template.data.url: same change on both sides: "***"' in same
    unknown = three_way(None, hook(NEW_URL), hook(server_url), secret_paths=HOOK_SECRET)
    assert server_url not in unknown and NEW_URL not in unknown and "(changed; the value holds a secret)" in unknown


# ---- secret locations with raw texts: the wording shows, the variables do not -------------------------

PHONE_OLD, PHONE_NEW = "+1 555 0100-OLD", "+1 555 0199-NEW"
SMS_RAW = "Acme: order {{ data.n }} has shipped. Questions? Call ${SUPPORT_PHONE}."
SMS_RAW_HEAD = "Acme: order {{ data.n }} is on its way. Questions? Call ${SUPPORT_PHONE}."
SMS_AT = ("sms_1", ("template", "data", "body"))


def sms(body: str, *, name: str = "Order shipped") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "sms_1", "type": "channel", "channel_type": "sms", "position": 1,
             "template": {"channel_type": "sms", "data": {"body": body}}},
        ],
    }


def filled(raw: str, phone: str) -> str:
    return raw.replace("${SUPPORT_PHONE}", phone)


def test_a_secret_field_fitting_its_raw_text_shows_the_wording_change_with_the_value_masked() -> None:
    server, repo = sms(filled(SMS_RAW, PHONE_OLD)), sms(filled(SMS_RAW_HEAD, PHONE_NEW))
    paths = {SMS_AT: (SMS_RAW_HEAD, SMS_RAW)}  # head's raw text, and the base revision's (the server's)
    text = semantic_diff(server, repo, secret_paths=paths).render()
    assert PHONE_OLD not in text and PHONE_NEW not in text
    assert text == (
        "~ step sms_1 (channel/sms)\n"
        '    template.data.body: "Acme: order {{ data.n }} has shipped. Questions? Call ***." -> '
        '"Acme: order {{ data.n }} is on its way. Questions? Call ***."'
    )
    # the real values are kept for decisions
    [change] = semantic_diff(server, repo, secret_paths=paths).steps[0].fields
    assert (change.old, change.new) == (filled(SMS_RAW, PHONE_OLD), filled(SMS_RAW_HEAD, PHONE_NEW))


def test_a_rotated_value_that_fits_the_raw_text_is_masked_and_the_rest_shows() -> None:
    body = "<p>Hello</p>\n<p>Call ${SUPPORT_PHONE} today</p>\n<p>Bye</p>\n" * 3
    server, repo = sms(filled(body, PHONE_OLD)), sms(filled(body, PHONE_NEW))
    text = semantic_diff(server, repo, secret_paths={SMS_AT: (body,)}).render()
    assert PHONE_OLD not in text and PHONE_NEW not in text
    # only the value differs: the masked sides look alike, so the diff says so without a line diff
    assert text == "~ step sms_1 (channel/sms)\n    template.data.body: (changed; the value holds a secret)"
    # with an edit around it too, the line diff shows, every value as ***
    edited = sms(filled(body.replace("Bye", "Later", 1), PHONE_NEW))
    text = semantic_diff(server, edited, secret_paths={SMS_AT: (body.replace("Bye", "Later", 1), body)}).render()
    assert PHONE_OLD not in text and PHONE_NEW not in text
    assert "      +<p>Later</p>" in text and "       <p>Call *** today</p>" in text


def test_a_field_whose_text_also_changed_on_the_server_stays_hidden_whole() -> None:
    server = sms(f"Dashboard wording, call {PHONE_OLD}!")  # fits neither raw text: the value cannot be isolated
    repo = sms(filled(SMS_RAW_HEAD, PHONE_NEW))
    text = semantic_diff(server, repo, secret_paths={SMS_AT: (SMS_RAW_HEAD, SMS_RAW)}).render()
    assert PHONE_OLD not in text and PHONE_NEW not in text and "Dashboard" not in text and "way" not in text
    assert text == ('~ step sms_1 (channel/sms)\n'
                    '    template.data.body: "***" -> "***" (changed; the value holds a secret)')
    # a non-text value on a side is hidden too; a location without raw texts is hidden as before
    odd = sms("x")
    odd["steps"][1]["template"]["data"]["body"] = {"value": PHONE_OLD}
    text = semantic_diff(odd, repo, secret_paths={SMS_AT: (SMS_RAW_HEAD,)}).render()
    assert PHONE_OLD not in text and PHONE_NEW not in text and "way" not in text
    text = semantic_diff(sms(filled(SMS_RAW, PHONE_OLD)), repo, secret_paths={SMS_AT: ()}).render()
    assert "***\" -> \"***\" (changed" in text and "way" not in text


def test_created_and_added_fields_show_their_raw_text_masked() -> None:
    repo = sms(filled(SMS_RAW_HEAD, PHONE_NEW))
    created = semantic_diff(None, repo, secret_paths={SMS_AT: (SMS_RAW_HEAD,)}).render()
    assert PHONE_NEW not in created
    assert 'template.data.body: "Acme: order {{ data.n }} is on its way. Questions? Call ***."' in created
    # the old side is the base commit's plain text: given as a raw text of its own, it shows
    old, new = hook(NEW_URL, name="Hook"), hook(NEW_URL, name=f"Hook for {PHONE_NEW}")
    top = semantic_diff(old, new, secret_paths={("", ("name",)): ("Hook for ${SUPPORT_PHONE}", "Hook")}).render()
    assert top == '~ name: "Hook" -> "Hook for ***"'
    top = semantic_diff(old, new, secret_paths={("", ("name",)): ("Hook for ${SUPPORT_PHONE}",)}).render()
    assert top == '~ name: "***" -> "***" (changed; the value holds a secret)'


def test_three_way_shows_each_side_through_its_own_raw_text() -> None:
    base, repo = sms(filled(SMS_RAW, PHONE_OLD)), sms(filled(SMS_RAW_HEAD, PHONE_NEW))
    server = sms(filled(SMS_RAW, PHONE_OLD), name="Order shipped (dashboard)")
    view = three_way(base, repo, server, secret_paths={SMS_AT: (SMS_RAW_HEAD, SMS_RAW)}, secrets=[PHONE_NEW])
    assert PHONE_OLD not in view and PHONE_NEW not in view
    assert '"Acme: order {{ data.n }} has shipped. Questions? Call ***." -> ' in view
    assert '"Acme: order {{ data.n }} is on its way. Questions? Call ***."' in view
    assert '~ name: "Order shipped" -> "Order shipped (dashboard)"' in view
    # the server rewrote the SMS too, in its own words: that field is hidden whole on every side
    server = sms(f"Shipped! {PHONE_OLD}", name="Order shipped (dashboard)")
    view = three_way(base, repo, server, secret_paths={SMS_AT: (SMS_RAW_HEAD, SMS_RAW)})
    assert PHONE_OLD not in view and PHONE_NEW not in view and "Shipped!" not in view
    assert '! step sms_1 template.data.body: repo (text, 1 lines, 60 chars), server "***"' in view
