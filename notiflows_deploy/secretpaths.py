"""Make fields that hold a `${NAME}` substitution readable in diffs without showing any value.

A field the repo fills from an environment variable is masked on every side of a diff, because the server
may hold a rotated secret's old value, which no longer is in the environment. Hiding the whole field also
hides the wording around the variable (an SMS body with ``${SUPPORT_PHONE}`` once). The repo's raw text of
the field (``Call ${SUPPORT_PHONE} now``) explains any side whose value fits it; such a side is shown as
that text with the variables as ``***`` (see `diff`), and the values the server holds for the variables
are read out of its text and added to the run's secrets, so they are masked everywhere else too.

Candidate raw texts for a field: head's, and the base commit's (the server usually holds the base
revision, whose wording may differ from head's); where the base has plain text (no variable) in that
field, that exact text. A side that fits none is hidden whole, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from notiflows_deploy import envsubst
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.diff import SecretPath
from notiflows_deploy.loader import LoadedNotiflow
from notiflows_deploy.normalize import content_from_payload, content_from_remote
from notiflows_deploy.redact import MIN_LENGTH


class SecretSinkLike(Protocol):
    """What is needed of the run's secret collection (runner.SecretSink, or a plain set)."""

    def update(self, *others: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class SecretView:
    # Pass as `secret_paths=` to the diff code (PlanInput, semantic_diff, three_way).
    templates: dict[SecretPath, tuple[str, ...]]
    # Where the server's value fits none of the raw texts: those fields stay hidden whole.
    hidden: frozenset[SecretPath]
    # What the server holds for the variables (already added to the secrets given).
    old_values: frozenset[str]


_NOTHING: Any = object()


def value_at(content: Mapping[str, Any] | None, where: SecretPath) -> Any:
    """The value at `where` in normalised content (steps keyed by handle), or `_NOTHING`."""
    if content is None:
        return _NOTHING
    handle, key = where
    value: Any = content
    if handle:
        steps = content.get("steps")
        if not isinstance(steps, Mapping) or handle not in steps:
            return _NOTHING
        value = steps[handle]
    for part in key:
        inside = (part in value if isinstance(value, Mapping)
                  else isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value))
        if not inside:
            return _NOTHING
        value = value[part]
    return value


def candidate_templates(head: LoadedNotiflow, base: LoadedNotiflow | None = None) -> dict[SecretPath, tuple[str, ...]]:
    """Each of head's secret locations with the raw texts its value may fit (head's first, then the base's)."""
    out = {where: tuple(raws) for where, raws in head.secret_templates.items()}
    if base is None or base.payload is None:
        return out
    base_raws = base.secret_templates
    base_content = content_from_payload(base.payload)
    for where, raws in out.items():
        extra: tuple[str, ...] = ()
        if where in base_raws:
            extra = base_raws[where]
        else:
            plain = value_at(base_content, where)
            if isinstance(plain, str):  # the base commit's own text, no variable: fits only itself
                extra = (envsubst.escape(plain),)
        out[where] = raws + tuple(r for r in extra if r not in raws)
    return out


def old_values(templates: Mapping[SecretPath, Iterable[str]], content: Mapping[str, Any] | None,
               ) -> tuple[frozenset[str], frozenset[SecretPath]]:
    """(values `content` holds for the variables, locations whose value fits no raw text).

    Whitespace and values shorter than `redact.MIN_LENGTH` are left out: masking them would blot out
    ordinary text everywhere (the Redactor and ::add-mask:: skip them too), and the diff never shows a
    value anyway (it shows the raw text).
    """
    found: set[str] = set()
    hidden: set[SecretPath] = set()
    for where, raws in templates.items():
        value = value_at(content, where)
        if value is _NOTHING:
            continue
        values = None
        if isinstance(value, str):
            for raw in raws:
                values = envsubst.extract_values(raw, value)
                if values is not None:
                    break
        if values is None:
            hidden.add(where)
            continue
        found.update(v for v in values.values() if len(v.strip()) >= MIN_LENGTH)
    return frozenset(found), frozenset(hidden)


def secret_view(
    head: LoadedNotiflow,
    *,
    base: LoadedNotiflow | None = None,
    remote: RemoteNotiflow | None = None,
    secrets: SecretSinkLike | None = None,
) -> SecretView:
    """The raw texts for head's secret locations and what the server's values of them reveal.

    The old values found in the server's current version go into `secrets` before this returns, so they
    are masked (and, under GitHub, ``::add-mask::``ed) before any diff is rendered.
    """
    templates = candidate_templates(head, base)
    content = content_from_remote(remote) if isinstance(remote, RemoteNotiflow) else None
    values, hidden = old_values(templates, content)
    if secrets is not None and values:
        secrets.update(values)
    return SecretView(templates, hidden, values)
