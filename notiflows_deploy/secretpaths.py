"""Make fields that hold a `${NAME}` substitution readable in diffs without showing any value.

A field that any compared side fills from an environment variable is masked on every side of a diff,
because the server may hold a rotated secret's old value, which no longer is in the environment; and a
field that stopped using its variable (head says "Plain subject", the base said "Key ${API_KEY}") still
holds the value on the server. Hiding the whole field also hides the wording around the variable (an SMS
body with ``${SUPPORT_PHONE}`` once). The repo's raw text of the field (``Call ${SUPPORT_PHONE} now``)
explains any side whose value fits it; such a side is shown as that text with the variables as ``***``
(see `diff`), and the values the server holds for the variables are read out of its text and added to the
run's secrets (`SecretSinkLike.learn`: redacted, never ``::add-mask::``ed), so they are masked everywhere
else too.

The sides: head, the base commit (the server usually holds the base revision, whose wording may differ
from head's), and any other revision compared with the server (a pull request's base branch tip, the
history revisions drift searched). The locations are those of every side; the candidate raw texts of a
location are each side's raw text of it, or, where a side has plain text (no variable) there, that exact
text. A side that fits none is hidden whole, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from notiflows_deploy import envsubst
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.diff import SecretPath
from notiflows_deploy.normalize import content_from_payload, content_from_remote
from notiflows_deploy.redact import LEARNED_MIN_LENGTH


class SecretSinkLike(Protocol):
    """What is needed of the run's secret collection (runner.SecretSink, or a plain set)."""

    def update(self, *others: Iterable[str]) -> None: ...


class Side(Protocol):
    """One revision of a notiflow that is compared with the server (loader.LoadedNotiflow, drift.Revision)."""

    @property
    def payload(self) -> dict[str, Any] | None: ...

    @property
    def secret_templates(self) -> Mapping[SecretPath, Sequence[str]]: ...


def learn(secrets: SecretSinkLike, values: Iterable[str]) -> None:
    """Values read out of the server's text: redacted, never announced (``SecretSink.learn``).

    A plain set has no announcing to skip: the values are simply added.
    """
    taker = getattr(secrets, "learn", None)
    if callable(taker):
        taker(values)
    else:
        secrets.update(values)


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


def candidate_templates(head: Side, base: Side | None = None, others: Iterable[Side] = (),
                        ) -> dict[SecretPath, tuple[str, ...]]:
    """Every secret location of any side with the raw texts its value may fit (head's first, then the
    base's, then the others'); a side with plain text at a location adds that text (it fits only itself)."""
    sides = [_Sided(side) for side in (head, base, *others) if side is not None and side.payload is not None]
    locations = dict.fromkeys(where for side in sides for where in side.templates)
    out: dict[SecretPath, tuple[str, ...]] = {}
    for where in locations:
        raws: list[str] = []
        for side in sides:
            for raw in side.raws_at(where):
                if raw not in raws:
                    raws.append(raw)
        out[where] = tuple(raws)
    return out


class _Sided:
    """One side's raw texts per location; its content is normalised only when a plain text is needed."""

    def __init__(self, side: Side) -> None:
        self.templates = side.secret_templates
        self._payload = side.payload
        self._content: Mapping[str, Any] | None = None

    def raws_at(self, where: SecretPath) -> Sequence[str]:
        """Its own raw text(s) at `where`, else its plain text there, escaped (fits only itself)."""
        if where in self.templates:
            return self.templates[where]
        if self._content is None:
            self._content = content_from_payload(self._payload) if self._payload is not None else {}
        plain = value_at(self._content, where)
        return (envsubst.escape(plain),) if isinstance(plain, str) else ()


def old_values(templates: Mapping[SecretPath, Iterable[str]], content: Mapping[str, Any] | None,
               ) -> tuple[frozenset[str], frozenset[SecretPath]]:
    """(values `content` holds for the variables, locations whose value fits no raw text).

    Whitespace and values shorter than `redact.LEARNED_MIN_LENGTH` are left out: masking them would blot
    out ordinary text everywhere (the server's text is anyone's with dashboard access), and the diff never
    shows a value anyway (it shows the raw text).
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
        found.update(v for v in values.values() if len(v.strip()) >= LEARNED_MIN_LENGTH)
    return frozenset(found), frozenset(hidden)


def secret_view(
    head: Side,
    *,
    base: Side | None = None,
    remote: RemoteNotiflow | None = None,
    secrets: SecretSinkLike | None = None,
    others: Iterable[Side] = (),
) -> SecretView:
    """The raw texts for the secret locations of head, the base and `others`, and what the server's
    values of them reveal.

    The old values found in the server's current version go into `secrets` (`learn`: redacted, not
    ``::add-mask::``ed) before this returns, so they are masked before any diff is rendered.
    """
    templates = candidate_templates(head, base, others)
    content = content_from_remote(remote) if isinstance(remote, RemoteNotiflow) else None
    values, hidden = old_values(templates, content)
    if secrets is not None and values:
        learn(secrets, values)
    return SecretView(templates, hidden, values)
