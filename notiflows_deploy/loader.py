"""Files to payload: read one notiflow directory through a `Tree` and build its push payload.

The payload is notiflow.json with `$schema` and `__meta` removed, every `KEY@` pointer inside a
step's `template.data` replaced by `KEY` holding the pointed-at file's text, and every `${NAME}`
substituted (see `envsubst`). Everything wrong is a `Problem` (never an exception) located in the
file a user would edit; the payload is None as soon as one error is found.

Only the `Tree` protocol is used (kind/read_bytes/readlink/listdir), so the same code loads the
working tree and a git commit. Symlinks are resolved here, one component at a time, and refused
when they lead outside the notiflow directory. A `..` that climbs above the notiflow directory is
refused even when the path would come back into it (`../<handle>/x`): a rename must not break it.

Pointer values (the paths) are taken literally: `${NAME}` is substituted in every other string
value and in the extracted files' text, never in keys, pointer paths, `$schema` or `__meta`.
Where a substitution happened is recorded (`substituted_paths`, payload paths: a `body@` pointer
whose file substituted a value is recorded as `body`), so diffs can mask those fields on every side:
the server may still hold a rotated secret's old value, which no longer is in the environment. Each such
field's text as written (`raw_substituted`, e.g. ``Call ${SUPPORT_PHONE} now``) lets a diff show the
field's other text with only the variables masked, on any side whose value fits it.

The schema and the format rules check the document after substitution (what is pushed), located
in the file as written; a string whose substitution failed (an unset variable, reported at the
`${` itself) is judged only by its type, and messages quote substituted strings as written.

Files are checked before they are read: anything but a regular file (a FIFO would block for
ever) is refused unopened, and a file over `max_bytes` is refused by its size when the tree knows
it. A directory name that is not UTF-8 becomes a printable handle (`caf\\xe9`) and is refused.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from notiflows_deploy import envsubst
from notiflows_deploy.diff import SecretPath, secret_path_map, secret_paths_from_payload
from notiflows_deploy.files import EntryKind, FileTooLarge, Tree, read_capped
from notiflows_deploy.jsonpos import JsonSyntaxError, ParsedJson, json_type_name, parse_json
from notiflows_deploy.model import Problem, Severity
from notiflows_deploy.redact import public_var_names
from notiflows_deploy.rules import REQUIRED_TEXT, article, is_blank

NOTIFLOW_FILE = "notiflow.json"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS: a loop ends here
BODY_OPTIONAL_CHANNELS = frozenset({"webhook"})  # every other channel template requires a body
STRIPPED_KEYS = ("$schema", "__meta")

_HANDLE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DRIVE = re.compile(r"[A-Za-z]:")
_BOM = b"\xef\xbb\xbf"
_BYTE_ESCAPE = re.compile(r"\\x[0-9a-f]{2}")
_SURROGATES = re.compile("[\ud800-\udfff]")  # what a value not valid as UTF-8 decodes to (surrogateescape)
_UNREADABLE_HINT = "check the file's permissions (the run must be able to read it)"

JsonPath = tuple[str | int, ...]


class DocumentChecker(Protocol):
    """What the loader needs from `validate.DocumentChecker` (schema and format rules)."""

    def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]: ...


@dataclass
class LoadedNotiflow:
    handle: str
    path: str  # the notiflow directory, relative to the repository root
    file: str  # its notiflow.json, relative to the repository root
    payload: dict[str, Any] | None  # None when any error was found
    document: dict[str, Any] | None  # notiflow.json as written (None if unparsable)
    meta: dict[str, Any] = field(default_factory=dict)
    meta_sha: str | None = None
    problems: list[Problem] = field(default_factory=list)
    secret_values: frozenset[str] = frozenset()
    schema_url: str | None = None
    # Payload paths of every string that had a variable substituted, e.g. ("steps", 1, "template", "data", "url").
    substituted_paths: frozenset[JsonPath] = frozenset()
    # The text as written (before substitution) of each substituted path: "Call ${SUPPORT_PHONE} now".
    raw_substituted: dict[JsonPath, str] = field(default_factory=dict)

    @property
    def secret_paths(self) -> frozenset[SecretPath]:
        """`substituted_paths` with steps named by handle, as the diff code applies them to any side."""
        return secret_paths_from_payload(self.payload, self.substituted_paths)

    @property
    def secret_templates(self) -> dict[SecretPath, tuple[str, ...]]:
        """`secret_paths` with the raw text of each (none known: the field stays hidden), for `diff`."""
        return {
            where: (self.raw_substituted[path],) if path in self.raw_substituted else ()
            for path, where in secret_path_map(self.payload, self.substituted_paths).items()
        }

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return self.payload is not None and not self.errors


def is_valid_handle(name: str) -> bool:
    """Lowercase letters, digits and single hyphens between them (welcome-series, not welcome_series)."""
    return _HANDLE.fullmatch(name) is not None


def suggest_handle(name: str) -> str:
    """The nearest valid handle ("Welcome_Series" -> "welcome-series"), or "" when there is none."""
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


def printable_name(name: str) -> str:
    """`name` as printable text: bytes that are not UTF-8 (surrogate escapes from os.listdir) as \\xNN."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
            return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name


def list_handles(tree: Tree, notiflows_root: str) -> list[str]:
    """Names of the directories (and symlinks, refused when loaded) directly under `notiflows_root`.

    A name that is not UTF-8 comes back printable (`caf\\xe9`), and loading it reports it as invalid.
    """
    if tree.kind(notiflows_root) is not EntryKind.DIR:
        return []
    return sorted(
        printable_name(name)
        for name in tree.listdir(notiflows_root)
        if tree.kind(posixpath.join(notiflows_root, name)) in (EntryKind.DIR, EntryKind.SYMLINK)
    )


def load_notiflow(
    tree: Tree,
    *,
    notiflows_root: str,
    handle: str,
    env: Mapping[str, str],
    checker: DocumentChecker | None = None,
    display_prefix: str = "",
    substitute: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedNotiflow:
    """Load `<notiflows_root>/<handle>` from `tree`. Never raises for bad input: see `problems`."""
    loader = _Loader(tree, notiflows_root, handle, env, checker, display_prefix, substitute, max_bytes)
    try:
        return loader.load()
    except OSError as exc:  # e.g. a directory without read permission: still a Problem, not a crash
        loader.error("notiflow-unreadable", f"cannot read {loader.prefix + loader.dir}: {exc.strerror or exc}",
                     hint="check the directory's permissions (the run must be able to list and read it)")
        return loader.result(None, None)


# --- reading files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    code: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class _Decoded:
    text: str | None = None
    refusal: _Refusal | None = None
    line: int = 1  # where the refusal is, inside the file
    column: int = 1


def _too_large(what: str, size: int, max_bytes: int, code_prefix: str) -> _Refusal:
    return _Refusal(
        f"{code_prefix}-too-large",
        f"{what} is {size:,} bytes, over the limit of {max_bytes:,} bytes",
        "keep notiflow files small; large content does not belong in a template",
    )


def _decode(data: bytes, *, what: str, max_bytes: int, code_prefix: str) -> _Decoded:
    if len(data) > max_bytes:
        return _Decoded(refusal=_too_large(what, len(data), max_bytes, code_prefix))
    if data.startswith(_BOM):  # tolerated (some editors add it) and not part of the content
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        return _Decoded(
            refusal=_Refusal(
                f"{code_prefix}-not-utf8",
                f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {line}, column {column})",
                "save the file as UTF-8",
            ),
            line=line,
            column=column,
        )
    return _Decoded(text=text)


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    # Columns count characters; the bytes before `offset` decoded fine, so this cannot fail.
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


# --- resolving pointers --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    path: str | None = None  # tree-relative path of a regular file inside the notiflow directory
    refusal: _Refusal | None = None


def _resolve(tree: Tree, base: str, pointer: str, subject: str = "") -> _Resolved:
    """Follow `pointer` (relative to the notiflow directory `base`) like the OS would, link by link.

    Every component is looked at before use, so a symlink anywhere on the way (the file included)
    is seen; a link may point anywhere that stays inside `base`. `subject` names the path in messages.
    """
    subject = subject or f"the pointer {pointer!r}"
    if not pointer:
        return _Resolved(refusal=_Refusal("pointer-invalid", "the pointer is an empty path",
                                          'name a file inside the notiflow directory, e.g. "steps/email_1/body.html"'))
    if "\x00" in pointer:
        return _Resolved(refusal=_Refusal("pointer-invalid", "the pointer contains a NUL character",
                                          "remove the \\u0000 from the path"))
    if "\\" in pointer:
        return _Resolved(refusal=_Refusal(
            "pointer-backslash", f"{subject} uses backslashes",
            "use forward slashes, relative to the notiflow directory (steps/email_1/body.html)",
        ))
    if pointer.startswith("/") or _DRIVE.match(pointer):
        return _Resolved(refusal=_Refusal(
            "pointer-absolute", f"{subject} is an absolute path",
            "write the path relative to the notiflow directory, e.g. steps/email_1/body.html",
        ))
    pending = [c for c in reversed(pointer.split("/")) if c not in ("", ".")]
    if not pending:
        return _Resolved(refusal=_Refusal("pointer-not-file", f"{subject} names the notiflow directory",
                                          'name a file inside it, e.g. "steps/email_1/body.html"'))
    resolved: list[str] = []
    hops = 0
    via_link = False
    while pending:
        comp = pending.pop()
        if comp == "..":
            if not resolved:
                if via_link:
                    return _Resolved(refusal=_link_escapes(subject))
                return _Resolved(refusal=_Refusal(
                    "pointer-escapes", f"{subject} leads outside the notiflow directory",
                    "extracted files must live inside the notiflow directory (e.g. steps/<step>/body.html)",
                ))
            resolved.pop()
            continue
        here = posixpath.join(base, *resolved, comp)
        kind = tree.kind(here)
        if kind is EntryKind.SYMLINK:
            hops += 1
            if hops > MAX_LINK_HOPS:
                return _Resolved(refusal=_Refusal(
                    "pointer-symlink-loop", f"{subject} follows more than {MAX_LINK_HOPS} symlinks",
                    "a symlink on this path points back at itself; replace it with the file",
                ))
            try:
                target = tree.readlink(here)
            except OSError:
                return _Resolved(refusal=_Refusal("pointer-unreadable",
                                                  f"cannot read a symlink on the way to {subject}",
                                                  "replace the symlink with the file itself"))
            via_link = True
            if not target or target.startswith("/") or "\\" in target or _DRIVE.match(target):
                return _Resolved(refusal=_link_escapes(subject))
            # The target is relative to the link's directory: `resolved` already is that directory.
            pending.extend(c for c in reversed(target.split("/")) if c not in ("", "."))
            continue
        if kind is EntryKind.MISSING:
            return _Resolved(refusal=_Refusal(
                "pointer-missing", f"{subject} names a file that does not exist in the notiflow directory",
                "create the file or fix the path (it is relative to the notiflow directory)",
            ))
        if pending and kind is not EntryKind.DIR:
            return _Resolved(refusal=_Refusal(
                "pointer-not-file", f"{subject} goes through {posixpath.join(*resolved, comp)!r}, "
                "which is not a directory",
                "fix the path: only its last part may be a file",
            ))
        resolved.append(comp)
    final = posixpath.join(base, *resolved)
    final_kind = tree.kind(final)
    if final_kind is EntryKind.SPECIAL:  # never opened: a FIFO would block the run for ever
        return _Resolved(refusal=_Refusal(
            "pointer-not-regular", f"{subject} is not a regular file (a named pipe, socket or device); "
            "it was not read",
            "replace it with a regular file holding the content",
        ))
    if final_kind is not EntryKind.FILE:
        return _Resolved(refusal=_Refusal(
            "pointer-not-file", f"{subject} names a directory, not a file",
            "point at the extracted file itself, e.g. steps/email_1/body.html",
        ))
    return _Resolved(path=final)


def _link_escapes(subject: str) -> _Refusal:
    return _Refusal(
        "pointer-symlink-escapes",
        f"{subject} goes through a symlink that leads outside the notiflow directory",
        "replace the symlink with the file itself (or a link to a file inside the notiflow directory)",
    )


# --- the loader ---------------------------------------------------------------------------------


def _channel_type(step: Mapping[str, Any], template: Mapping[str, Any]) -> str | None:
    """The template's channel type, else the step's; None when it is not a string (the schema says so)."""
    value = template.get("channel_type", step.get("channel_type"))
    return value if isinstance(value, str) else None


def _body_required(channel_type: str | None) -> bool:
    return channel_type not in BODY_OPTIONAL_CHANNELS  # an unknown channel type needs one too


class _Loader:
    def __init__(
        self, tree: Tree, notiflows_root: str, handle: str, env: Mapping[str, str],
        checker: DocumentChecker | None, display_prefix: str, substitute: bool, max_bytes: int,
    ) -> None:
        self.tree = tree
        self.env = env
        self.checker = checker
        self.prefix = display_prefix if not display_prefix or display_prefix.endswith("/") else display_prefix + "/"
        self.substitute = substitute
        self.max_bytes = max_bytes
        self.handle = handle
        self.dir = posixpath.join(notiflows_root, handle) if notiflows_root not in ("", ".") else handle
        self.file_rel = posixpath.join(self.dir, NOTIFLOW_FILE)
        self.file = self.prefix + self.file_rel
        self.problems: list[Problem] = []
        self.secrets: set[str] = set()
        self.public = public_var_names(env)  # variables whose values are no secret (NOTIFLOWS_PUBLIC_VARS)
        self.substituted: set[JsonPath] = set()  # payload paths
        self.raw: dict[JsonPath, str] = {}  # payload path -> its text before substitution
        self.written: dict[JsonPath, str] = {}  # document path -> text as written, of each string that changed
        self.unresolved: set[JsonPath] = set()  # strings whose value is unknown (a variable unset)
        self.parsed: ParsedJson | None = None
        self.checked_conflicts: set[tuple[int, int]] = set()  # KEY/KEY@ clashes the checker already reported

    # problems

    def error(self, code: str, message: str, *, file: str | None = None, line: int = 1, column: int = 1,
              hint: str = "") -> None:
        self.problems.append(Problem(file or self.file, line, column, code, message, hint=hint))

    def error_at(self, path: JsonPath, code: str, message: str, *, hint: str = "", key: bool = False) -> None:
        assert self.parsed is not None
        line, column = self.parsed.locate(path, key=key)
        self.error(code, message, line=line, column=column, hint=hint)

    def error_in_string(self, path: JsonPath, offset: int, code: str, message: str, *, hint: str = "") -> None:
        """An error at character `offset` of the string value at `path` (e.g. at a `${`)."""
        assert self.parsed is not None
        line, column = self.parsed.locate_in_string(path, offset)
        self.error(code, message, line=line, column=column, hint=hint)

    def result(self, document: dict[str, Any] | None, payload: dict[str, Any] | None) -> LoadedNotiflow:
        meta_raw = document.get("__meta") if document is not None else None
        meta = meta_raw if isinstance(meta_raw, dict) else {}
        sha = meta.get("sha")
        schema = document.get("$schema") if document is not None else None
        self.problems.sort(key=lambda p: (p.file, p.line, p.column))
        has_error = any(p.severity is Severity.ERROR for p in self.problems)
        return LoadedNotiflow(
            handle=self.handle,
            path=self.prefix + self.dir,
            file=self.file,
            payload=None if has_error else payload,
            document=document,
            meta=meta,
            meta_sha=sha if isinstance(sha, str) and sha else None,
            problems=self.problems,
            secret_values=frozenset(self.secrets) if self.substitute else frozenset(),
            substituted_paths=frozenset(self.substituted) if self.substitute else frozenset(),
            raw_substituted=dict(self.raw) if self.substitute else {},
            schema_url=schema if isinstance(schema, str) else None,
        )

    # steps

    def load(self) -> LoadedNotiflow:
        if not is_valid_handle(self.handle) and not self.invalid_handle():
            return self.result(None, None)
        kind = self.tree.kind(self.dir)
        if kind is EntryKind.SYMLINK:
            self.error("notiflow-dir-symlink", f"the notiflow directory {self.prefix + self.dir} is a symlink",
                       hint="make it a real directory; symlinked notiflows are refused")
            return self.result(None, None)
        if kind is not EntryKind.DIR:
            self.error("notiflow-dir-missing", f"{self.prefix + self.dir} is not a directory",
                       hint="a notiflow is a directory holding notiflow.json; check the handle")
            return self.result(None, None)
        text = self.read_document()
        if text is None:
            return self.result(None, None)
        try:
            self.parsed = parse_json(text)
        except JsonSyntaxError as exc:
            self.error(exc.code, exc.message, line=exc.line, column=exc.column, hint=exc.hint)
            return self.result(None, None)
        document = self.parsed.value
        if not isinstance(document, dict):
            self.error("json-not-object", f"{NOTIFLOW_FILE} must hold a JSON object, not {json_type_name(document)}",
                       hint='start with {"name": ..., "steps": [...]}')
            return self.result(None, None)
        pushed = self.substituted_document(document)
        self.parsed = self.parsed.with_value(pushed, raw_strings=self.written, unresolved=frozenset(self.unresolved))
        if self.checker is not None:
            checked = self.checker.check(self.parsed, file=self.file)
            self.problems.extend(checked)
            self.checked_conflicts = {(p.line, p.column) for p in checked if p.code.endswith("conflict")}
        payload = self.build_payload(pushed)
        return self.result(document, payload)

    def invalid_handle(self) -> bool:
        """Report the invalid handle; whether the directory may still be read (for its other problems)."""
        written = self.handle
        printable = printable_name(written)
        if printable != written or _BYTE_ESCAPE.search(written):
            self.handle = printable  # reports must never carry surrogate escapes
            self.dir = posixpath.join(posixpath.dirname(self.dir), printable)
            self.file_rel = posixpath.join(self.dir, NOTIFLOW_FILE)
            self.file = self.prefix + self.file_rel
            self.error("handle-invalid",
                       f'"{printable}" is not a valid notiflow handle: the directory name is not valid UTF-8 '
                       "(each byte that is not is shown as \\xNN); a handle holds only lowercase letters, digits "
                       "and single hyphens",
                       hint="rename the directory, e.g. to welcome-series")
            return False
        suggestion = suggest_handle(written)
        hint = (f'rename the directory to "{suggestion}"' if suggestion and suggestion != written
                else "rename the directory: lowercase letters, digits and single hyphens (e.g. welcome-series)")
        self.error("handle-invalid",
                   f'"{written}" is not a valid notiflow handle: the directory name is the handle and may '
                   "hold only lowercase letters, digits and single hyphens (no underscores)", hint=hint)
        # Not a directory name: never read outside notiflows_root.
        return not (written in ("", ".", "..") or "/" in written or "\\" in written)

    def read_document(self) -> str | None:
        # notiflow.json may itself be a link, to a file inside the notiflow directory only.
        found = _resolve(self.tree, self.dir, NOTIFLOW_FILE, subject=NOTIFLOW_FILE)
        if found.path is None:
            assert found.refusal is not None
            if found.refusal.code == "pointer-missing":
                self.error("notiflow-json-missing", f"{self.prefix + self.dir} has no {NOTIFLOW_FILE}",
                           hint=f"add {NOTIFLOW_FILE}, or remove the directory if it is not a notiflow")
            else:  # pointer-symlink-escapes -> notiflow-json-symlink-escapes, ...
                code = "notiflow-json-" + found.refusal.code.removeprefix("pointer-")
                self.error(code, found.refusal.message, hint=found.refusal.hint)
            return None
        try:
            data = read_capped(self.tree, found.path, self.max_bytes)
        except FileTooLarge as exc:
            r = _too_large(NOTIFLOW_FILE, exc.size, self.max_bytes, "notiflow-json")
            self.error(r.code, r.message, hint=r.hint)
            return None
        except OSError as exc:
            self.error("notiflow-json-unreadable", f"cannot read {NOTIFLOW_FILE}: {exc.strerror or exc}",
                       hint=_UNREADABLE_HINT)
            return None
        decoded = _decode(data, what=NOTIFLOW_FILE, max_bytes=self.max_bytes, code_prefix="notiflow-json")
        if decoded.refusal is not None:
            r = decoded.refusal
            self.error(r.code, r.message, line=decoded.line, column=decoded.column, hint=r.hint)
            return None
        assert decoded.text is not None
        if not decoded.text.strip():
            self.error("notiflow-json-empty", f"{NOTIFLOW_FILE} is empty",
                       hint='a notiflow.json holds a JSON object: {"name": ..., "steps": [...]}')
            return None
        return decoded.text

    # substitution: the document as it is pushed, same shape and paths

    def substituted_document(self, document: dict[str, Any]) -> dict[str, Any]:
        """`document` with `${NAME}` substituted wherever the payload gets it (not in `$schema`, `__meta`,
        keys or pointer paths). Records what changed, what stayed unknown, and every problem."""
        assert self.parsed is not None
        text = self.parsed.text
        if "${" not in text and "\\u" not in text:
            return document  # no string holds a reference (an escaped "\\u0024{" could): the common case
        out: dict[str, Any] = {}
        for key, value in document.items():
            if key in STRIPPED_KEYS:
                out[key] = value
            elif key == "steps" and isinstance(value, list):
                out[key] = [self.substituted_step(("steps", i), s) for i, s in enumerate(value)]
            else:
                out[key] = self.substituted_value((key,), value)
        return out

    def substituted_step(self, path: JsonPath, step: Any) -> Any:
        if not isinstance(step, dict):
            return self.substituted_value(path, step)
        out: dict[str, Any] = {}
        for key, value in step.items():
            if key == "template" and isinstance(value, dict):
                out[key] = {
                    tkey: self.substituted_data((*path, key, tkey), tvalue) if tkey == "data"
                    else self.substituted_value((*path, key, tkey), tvalue)
                    for tkey, tvalue in value.items()
                }
            else:
                out[key] = self.substituted_value((*path, key), value)
        return out

    def substituted_data(self, path: JsonPath, node: Any) -> Any:
        """Template data: like `substituted_value`, but a `KEY@` pointer's path is taken literally."""
        if isinstance(node, dict):
            return {k: v if k.endswith("@") else self.substituted_data((*path, k), v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.substituted_data((*path, i), v) for i, v in enumerate(node)]
        return self.substituted_value(path, node)

    def substituted_value(self, path: JsonPath, node: Any) -> Any:
        """A copy of `node` with variables substituted in every string (never in keys)."""
        if isinstance(node, str):
            return self.substituted_string(path, node) if "${" in node else node
        if isinstance(node, dict):
            return {k: self.substituted_value((*path, k), v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.substituted_value((*path, i), v) for i, v in enumerate(node)]
        return node

    def record_secrets(self, path: JsonPath, raw: str, sub: envsubst.Substitution) -> None:
        """Note the values of the secret variables `raw` used, and where: a field that used only public
        variables is shown as is; otherwise its raw text (public values filled in) explains it in diffs."""
        secret_names = frozenset() if "*" in self.public else sub.names - self.public
        if not secret_names:
            return
        self.secrets |= {v for n in secret_names if (v := self.env.get(n))}
        self.substituted.add(path)
        public = sub.names - secret_names
        self.raw[path] = envsubst.expand_only(raw, self.env, public) if public else raw

    def substituted_string(self, path: JsonPath, node: str) -> str:
        if not self.substitute:
            self.unresolved.add(path)  # its value is whatever the environment will say
            return node
        sub = envsubst.substitute(node, self.env)
        self.record_secrets(path, node, sub)
        if sub.text != node or sub.issues:
            self.written[path] = node
        if sub.issues:
            self.unresolved.add(path)
        for issue in sub.issues:
            self.error_in_string(path, issue.offset, issue.code, issue.message(), hint=issue.hint())
        if _SURROGATES.search(sub.text):
            self.unresolved.add(path)
            self.error_at(path, "env-not-utf8", _NOT_UTF8_VALUE, hint=_NOT_UTF8_HINT)
        return sub.text

    # the payload: the substituted document without $schema/__meta, with every pointer resolved

    def build_payload(self, document: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for key, value in document.items():
            if key in STRIPPED_KEYS:
                continue
            if key == "steps" and isinstance(value, list):
                payload[key] = [self.step(i, s) for i, s in enumerate(value)]
            else:
                payload[key] = _copy(value)
        return payload

    def step(self, index: int, step: Any) -> Any:
        path: JsonPath = ("steps", index)
        if not isinstance(step, dict):
            return _copy(step)
        out: dict[str, Any] = {}
        for key, value in step.items():
            if key == "template" and isinstance(value, dict):
                template: dict[str, Any] = {}
                for tkey, tvalue in value.items():
                    tpath = (*path, key, tkey)
                    if tkey == "data" and isinstance(tvalue, dict):
                        template[tkey] = self.data(tpath, tvalue, _channel_type(step, value), top=True)
                    else:
                        template[tkey] = _copy(tvalue)
                out[key] = template
            else:
                out[key] = _copy(value)
        return out

    def data(self, path: JsonPath, node: Any, channel_type: str | None, *, top: bool = False) -> Any:
        """A copy of template data with every KEY@ pointer (at any depth) resolved."""
        if isinstance(node, list):
            return [self.data((*path, i), v, channel_type) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not key.endswith("@"):
                out[key] = self.data((*path, key), value, channel_type)
                continue
            target = key[:-1]
            if not target:
                self.error_at((*path, key), "pointer-invalid", 'a pointer key needs a name before "@"',
                              hint='e.g. "body@": "steps/email_1/body.html"', key=True)
                continue
            if target in node:
                assert self.parsed is not None
                if self.parsed.locate((*path, key), key=True) in self.checked_conflicts:
                    continue  # the schema check said it already, at the same place
                self.error_at((*path, key), "pointer-conflict",
                              f'both "{target}" and "{key}" are set; keep one of them',
                              hint=f'"{key}" reads {target} from a file; remove the inline "{target}" or the pointer',
                              key=True)
                continue
            if not isinstance(value, str):
                self.error_at((*path, key), "pointer-not-string",
                              f'"{key}" must be a path (a string) relative to the notiflow directory, '
                              f"not {json_type_name(value)}",
                              hint=f'e.g. "{key}": "steps/<handle>/{target}.txt"')
                continue
            text = self.extract((*path, key), value, (*path, target))
            if text is None:
                continue
            if top and target == "body" and not text.strip() and _body_required(channel_type):
                self.error_at((*path, key), "body-empty",
                              f"the body file {value!r} is empty; {self.template_kind(path, channel_type)} "
                              "needs a body",
                              hint="write the template body into the file")
            elif top and is_blank(text) and target in REQUIRED_TEXT.get(channel_type or "", ()):
                self.error_at((*path, key), "text-blank",
                              f"the {target} file {value!r} is blank; {self.template_kind(path, channel_type)} "
                              f"needs a {target}",
                              hint=f"write the {target} into the file")
            out[target] = text
        return out

    def template_kind(self, data_path: JsonPath, channel_type: str | None) -> str:
        """ "an email template"; a substituted channel type is not spelled out (its value may be secret)."""
        step_path, template_path = data_path[:-2], data_path[:-1]
        written = any((*where, "channel_type") in self.written for where in (step_path, template_path))
        if channel_type is None or written:
            return "a channel template"
        return f"{article(channel_type)} {channel_type} template"

    def extract(self, path: JsonPath, pointer: str, payload_path: JsonPath) -> str | None:
        found = _resolve(self.tree, self.dir, pointer)
        if found.path is None:
            assert found.refusal is not None
            r = found.refusal
            self.error_at(path, r.code, r.message, hint=r.hint)
            return None
        what = f"the file {pointer!r}"
        try:
            data = read_capped(self.tree, found.path, self.max_bytes)
        except FileTooLarge as exc:
            r = _too_large(what, exc.size, self.max_bytes, "pointer")
            self.error_at(path, r.code, r.message, hint=r.hint)
            return None
        except OSError as exc:
            self.error_at(path, "pointer-unreadable", f"cannot read {pointer!r}: {exc.strerror or exc}",
                          hint=_UNREADABLE_HINT)
            return None
        shown = self.prefix + found.path
        decoded = _decode(data, what=what, max_bytes=self.max_bytes, code_prefix="pointer")
        if decoded.refusal is not None:
            r = decoded.refusal
            if r.code == "pointer-not-utf8":  # points into the extracted file itself
                self.error(r.code, r.message, file=shown, line=decoded.line, column=decoded.column, hint=r.hint)
            else:
                self.error_at(path, r.code, r.message, hint=r.hint)
            return None
        assert decoded.text is not None
        if not self.substitute:
            return decoded.text
        sub = envsubst.substitute(decoded.text, self.env)
        self.record_secrets(payload_path, decoded.text, sub)
        if _SURROGATES.search(sub.text):
            self.error("env-not-utf8", f"{_NOT_UTF8_VALUE} (in {pointer!r})", file=shown, hint=_NOT_UTF8_HINT)
        for issue in sub.issues:
            line, column = envsubst.line_col(decoded.text, issue.offset)
            self.error(issue.code, f"{issue.message()} in {pointer!r}", file=shown, line=line, column=column,
                       hint=issue.hint())
        return sub.text


_NOT_UTF8_VALUE = "a substituted variable's value is not valid UTF-8, so the text cannot be sent"
_NOT_UTF8_HINT = "set the variable to UTF-8 text (its value is not shown here)"


def _copy(node: Any) -> Any:
    """A deep copy of decoded JSON (the payload never shares containers with the document)."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
