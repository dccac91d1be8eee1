"""The emulator's state (projects, notiflows, versions) and the operations of CONTRACT section 5.

Every public method takes the store lock; HTTP concerns (auth, faults, routing) live in server.py.
Operations raise `ApiProblem` for documented errors.

Writes are copy-on-write and one at a time (`_write_lock`): a write builds the new state next to
the current one (only the notiflow it changes is copied), then, with a data file, persists it
atomically (temp file in the same directory, fsync, os.replace) and only then makes it the state.
When persisting fails (a full disk, --data in a read-only place) the answer is a 500 and nothing
changed, so a retry does the write again instead of finding it done in memory and never saved.
Readers see the old state until the new one is durable, and are never blocked by an fsync.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notiflows_deploy.emulator import content as C

STATE_FORMAT = 1
DEFAULT_LIST_LIMIT = 25
MAX_LIST_LIMIT = 100
MEMBER_ACTOR: dict[str, str] = {"type": "member", "id": "mem_dashboard", "name": "Dashboard User"}
DEFAULT_REMOTE_STEPS: list[dict[str, Any]] = [
    {"handle": "trigger", "type": "trigger", "position": 0},
    {
        "handle": "in_app_1",
        "type": "channel",
        "position": 1,
        "channel_type": "in_app",
        "channel_handle": "in-app",
        "template": {
            "channel_type": "in_app",
            "data": {"content_type": "markdown", "body": "Hello from the dashboard"},
        },
    },
    {"handle": "end", "type": "end", "position": 2},
]
SEED_STEPS: list[dict[str, Any]] = [
    {"handle": "trigger", "type": "trigger", "position": 0},
    {"handle": "end", "type": "end", "position": 1},
]


class ApiProblem(Exception):
    """A documented error answer: becomes the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def not_found(resource: str, ident: str) -> ApiProblem:
    return ApiProblem(404, "not_found", f"{resource.capitalize()} not found", {"resource": resource, "id": ident})


def validation_failed(fields: list[C.FieldError], message: str = "Validation failed") -> ApiProblem:
    return ApiProblem(422, "validation_failed", message, {"fields": fields})


def bad_param(param: str, message: str) -> ApiProblem:
    return ApiProblem(400, "bad_request", message, {"reason": "invalid_param", "param": param})


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Store:
    """`fresh_drafts`: after a publish, add a new draft equal to the published version, as the
    versioning docs describe ("the draft becomes published and a fresh draft is created"). Off by
    default: whether the real API exposes that draft as the current version is not documented."""

    def __init__(
        self, projects: Mapping[str, str], data_file: str | os.PathLike[str] | None = None, *,
        fresh_drafts: bool = False,
    ) -> None:
        self.fresh_drafts = fresh_drafts
        self.lock = threading.Lock()  # the state: held briefly, by readers and writers
        self._write_lock = threading.Lock()  # one write at a time, held while persisting
        self._configured = dict(projects)
        self.data_file = Path(data_file) if data_file is not None else None
        self._projects: dict[str, dict[str, Any]] = {}
        self._get_cache: dict[tuple[str, str], bytes] = {}
        if self.data_file is not None and self.data_file.exists():
            self._load(self.data_file)
        self._projects = self._with_configured(self._projects)

    # ---- state management -------------------------------------------------------------------

    def _with_configured(self, projects: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """`projects` plus an empty project for every configured slug it lacks (a new mapping)."""
        out = dict(projects)
        for slug, name in self._configured.items():
            if slug not in out:
                out[slug] = {"id": str(uuid.uuid4()), "name": name, "slug": slug, "notiflows": {}}
        return out

    def _load(self, path: Path) -> None:
        try:
            data = C.loads_strict(path.read_text(encoding="utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise ValueError(f"{path}: not an emulator state file: {_one_line(exc)}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT or not isinstance(
            data.get("projects"), dict
        ):
            raise ValueError(f"{path}: not an emulator state file (format {STATE_FORMAT})")
        # A file that parses but has the wrong shape would load and then fail every request.
        problem = state_problem(data["projects"])
        if problem is not None:
            raise ValueError(f"{path}: not a valid emulator state file: {problem}; fix or delete it")
        self._projects = data["projects"]

    def reset(self) -> None:
        """Forget every notiflow (projects stay, with new ids); persisted like any write."""
        with self._write_lock:
            self._commit(self._with_configured({}), clear_cache=True)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"format": STATE_FORMAT, "projects": copy.deepcopy(self._projects)}

    def _commit(self, projects: dict[str, dict[str, Any]], changed: tuple[str, str] | None = None, *,
                clear_cache: bool = False) -> None:
        """Make `projects` the state, once it is on disk (with a data file). `_write_lock` held.

        `projects` shares every part it did not change with the current state; nothing mutates
        either (writers copy what they change), so it is serialised without the state lock.
        """
        if self.data_file is not None:
            try:
                self._save(dumps({"format": STATE_FORMAT, "projects": projects}))
            except OSError as exc:  # nothing changed: the state is still the one on disk
                raise ApiProblem(500, "internal_error",
                                 f"The emulator could not save its state to {self.data_file}: "
                                 f"{exc.strerror or exc}; nothing was changed",
                                 {"reason": "state_not_saved"}) from None
        with self.lock:
            self._projects = projects
            if clear_cache:
                self._get_cache.clear()
            elif changed is not None:
                self._get_cache.pop(changed, None)

    def _save(self, data: bytes) -> None:
        assert self.data_file is not None
        directory = self.data_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.data_file.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.data_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _with_flow(self, slug: str, handle: str, flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The state with `flow` as notiflow `handle` of project `slug` (new mappings on the way down)."""
        project = self._projects[slug]
        return {**self._projects, slug: {**project, "notiflows": {**project["notiflows"], handle: flow}}}

    # ---- helpers (lock held) -------------------------------------------------------------------

    def _project(self, slug: str) -> dict[str, Any]:
        project: dict[str, Any] | None = self._projects.get(slug)
        if project is None:
            raise not_found("project", slug)
        return project

    def require(self, slug: str, handle: str | None = None) -> None:
        """404 for an unknown project (or notiflow, given `handle`): called before a body is looked at."""
        with self.lock:
            if handle is None:
                self._project(slug)
            else:
                self._notiflow(slug, handle)

    def _notiflow(self, slug: str, handle: str) -> dict[str, Any]:
        flow: dict[str, Any] | None = self._project(slug)["notiflows"].get(handle)
        if flow is None:
            raise not_found("notiflow", handle)
        return flow

    @staticmethod
    def _version(flow: dict[str, Any], number: int | None) -> dict[str, Any] | None:
        if number is None:
            return None
        for version in flow["versions"]:
            if version["version_number"] == number:
                found: dict[str, Any] = version
                return found
        return None

    @staticmethod
    def _version_json(flow: dict[str, Any], version: dict[str, Any] | None) -> dict[str, Any] | None:
        if version is None:
            return None
        return {
            "created_by": version["created_by"],
            "id": version["id"],
            "inserted_at": version["inserted_at"],
            "notiflow_id": flow["id"],
            "published_at": version["published_at"],
            "published_by": version["published_by"],
            "sha": version["sha"],
            "status": version["status"],
            "steps": version["content"]["steps"],
            "updated_at": version["updated_at"],
            "valid": version["valid"],
            "version_number": version["version_number"],
        }

    def _metadata(self, flow: dict[str, Any]) -> dict[str, Any]:
        current = self._version(flow, flow["current"])
        assert current is not None
        published = self._version(flow, flow["published"])
        return {
            "active": current["content"]["active"],
            "created_at": flow["created_at"],
            "current_version_id": current["id"],
            "handle": flow["handle"],
            "has_unpublished_changes": self._unpublished(current, published),
            "id": flow["id"],
            "include_in_preferences": current["content"]["include_in_preferences"],
            "name": current["content"]["name"],
            "published_version_id": published["id"] if published else None,
            "updated_at": flow["updated_at"],
        }

    def _unpublished(self, current: dict[str, Any], published: dict[str, Any] | None) -> bool:
        if current["status"] != "draft":
            return False
        # A fresh draft equal to the published version holds no unpublished change.
        return not (self.fresh_drafts and published is not None and published["sha"] == current["sha"])

    def _full(self, flow: dict[str, Any]) -> dict[str, Any]:
        data = self._metadata(flow)
        data["current_version"] = self._version_json(flow, self._version(flow, flow["current"]))
        data["published_version"] = self._version_json(flow, self._version(flow, flow["published"]))
        return data

    def _new_version(self, flow: dict[str, Any], body: dict[str, Any], actor: dict[str, str]) -> dict[str, Any]:
        """Add a draft with this content; an existing draft is replaced (one draft at a time)."""
        stamp = now_iso()
        number = flow["next_version"]
        flow["next_version"] = number + 1
        current = self._version(flow, flow["current"])
        if current is not None and current["status"] == "draft":
            flow["versions"].remove(current)
        version = {
            "id": str(uuid.uuid4()),
            "version_number": number,
            "status": "draft",
            "sha": C.content_sha(body),
            "content": body,
            "valid": not C.validate_for_publish(body["steps"]),
            "inserted_at": stamp,
            "updated_at": stamp,
            "published_at": None,
            "created_by": dict(actor),
            "published_by": None,
        }
        flow["versions"].append(version)
        flow["current"] = number
        flow["updated_at"] = stamp
        return version

    @staticmethod
    def _copy_flow(flow: dict[str, Any]) -> dict[str, Any]:
        """A copy that a write may change: the flow and its versions (their content is never changed)."""
        return {**flow, "versions": [dict(v) for v in flow["versions"]]}

    @staticmethod
    def _blank_flow(handle: str) -> dict[str, Any]:
        stamp = now_iso()
        flow: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "handle": handle,
            "created_at": stamp,
            "updated_at": stamp,
            "versions": [],
            "current": None,
            "published": None,
            "next_version": 1,
        }
        return flow

    def _publish(self, flow: dict[str, Any], actor: dict[str, str]) -> bool:
        """Make the draft the published version; False when there is nothing to publish."""
        current = self._version(flow, flow["current"])
        assert current is not None
        previous = self._version(flow, flow["published"])
        if not self._unpublished(current, previous):
            return False
        fields = C.validate_for_publish(current["content"]["steps"])
        if fields:
            raise validation_failed(fields, "The draft is not valid and cannot be published")
        stamp = now_iso()
        if previous is not None:
            previous["status"] = "archived"
            previous["updated_at"] = stamp
        current.update(status="published", published_at=stamp, published_by=dict(actor), updated_at=stamp)
        flow["published"] = current["version_number"]
        flow["updated_at"] = stamp
        if self.fresh_drafts:
            self._new_version(flow, copy.deepcopy(current["content"]), actor)
        return True

    # ---- API operations -----------------------------------------------------------------------

    def whoami(self, slug: str) -> dict[str, Any]:
        with self.lock:
            project = self._project(slug)
            return {"project": {"id": project["id"], "name": project["name"], "slug": project["slug"]}}

    def list_notiflows(
        self, slug: str, page: int = 1, limit: int = DEFAULT_LIST_LIMIT, filters: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        limit = min(limit, MAX_LIST_LIMIT)
        filters = filters or {}
        query = filters.get("query", "").lower()
        with self.lock:
            project = self._project(slug)
            items = [self._metadata(project["notiflows"][h]) for h in sorted(project["notiflows"])]
        if query:
            items = [i for i in items if query in i["handle"].lower() or query in str(i["name"]).lower()]
        if "active" in filters:
            want = filters["active"].lower() == "true"
            items = [i for i in items if i["active"] is want]
        if "published" in filters:
            want = filters["published"].lower() == "true"
            items = [i for i in items if (i["published_version_id"] is not None) is want]
        start = (page - 1) * limit
        return {"items": items[start : start + limit], "page_info": {"page": page, "limit": limit, "total": len(items)}}

    def get_notiflow_bytes(self, slug: str, handle: str) -> bytes:
        """The GET answer, cached until the notiflow changes (the hot path of every client)."""
        key = (slug, handle)
        with self.lock:
            cached = self._get_cache.get(key)
            if cached is None:
                cached = dumps(self._full(self._notiflow(slug, handle)))
                self._get_cache[key] = cached
            return cached

    def get_notiflow(self, slug: str, handle: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._full(self._notiflow(slug, handle)))

    def upsert(
        self, slug: str, handle: str, body: dict[str, Any], actor: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """PUT: returns (201|200, notiflow). See CONTRACT section 5 for the rules."""
        with self.lock:
            self._project(slug)  # an unknown project is a 404 before any validation
        errors = C.validate_handle(handle) + C.validate_top_level(body)
        if errors:
            raise validation_failed(errors)
        body = C.drop_nulls(body)
        expected = body.pop("expected_sha", None)
        with self._write_lock:
            with self.lock:
                flow = self._project(slug)["notiflows"].get(handle)
                current = self._version(flow, flow["current"]) if flow is not None else None
                if expected is not None and (current is None or current["sha"] != expected):
                    raise ApiProblem(
                        409,
                        "conflict",
                        "The notiflow changed since expected_sha" if current else "The notiflow does not exist",
                        {"resource": "notiflow", "id": handle, "reason": "sha_mismatch"},
                    )
                base = current["content"] if current else {
                    "name": handle, "active": True, "include_in_preferences": True, "steps": SEED_STEPS,
                }
                new = {k: copy.deepcopy(body[k]) if k in body else copy.deepcopy(base[k]) for k in C.CONTENT_KEYS}
                fields = C.validate_steps(new["steps"])
                if fields:
                    raise validation_failed(fields)
                if flow is not None and current is not None and C.content_sha(new) == current["sha"]:
                    return 200, copy.deepcopy(self._full(flow))
                work = self._blank_flow(handle) if flow is None else self._copy_flow(flow)
                self._new_version(work, new, actor)
                result = copy.deepcopy(self._full(work))
                projects = self._with_flow(slug, handle, work)
            self._commit(projects, (slug, handle))
        return (201 if flow is None else 200), result

    def publish(self, slug: str, handle: str, actor: dict[str, str]) -> dict[str, Any]:
        with self._write_lock:
            with self.lock:
                work = self._copy_flow(self._notiflow(slug, handle))
                changed = self._publish(work, actor)
                result = copy.deepcopy(self._full(work))
                projects = self._with_flow(slug, handle, work)
            if changed:
                self._commit(projects, (slug, handle))
        return result

    def list_versions(
        self, slug: str, handle: str, limit: int = DEFAULT_LIST_LIMIT, after: int | None = None,
        before: int | None = None,
    ) -> dict[str, Any]:
        limit = min(limit, MAX_LIST_LIMIT)
        with self.lock:
            flow = self._notiflow(slug, handle)
            ordered = [self._version_json(flow, v) for v in sorted(
                flow["versions"], key=lambda v: v["version_number"], reverse=True)]
        # Newest first; `after` continues towards older versions, `before` towards newer ones.
        if after is not None:
            pool = [v for v in ordered if v is not None and v["version_number"] < after]
            items = pool[:limit]
        elif before is not None:
            pool = [v for v in ordered if v is not None and v["version_number"] > before]
            items = pool[-limit:]
        else:
            items = [v for v in ordered if v is not None][:limit]
        numbers = [v["version_number"] for v in ordered if v is not None]
        first = items[0]["version_number"] if items else None
        last = items[-1]["version_number"] if items else None
        has_after = last is not None and any(n < last for n in numbers)
        has_before = first is not None and any(n > first for n in numbers)
        return {
            "items": items,
            "page": {
                "after": str(last) if has_after else None,
                "before": str(first) if has_before else None,
                "has_more_after": has_after,
                "has_more_before": has_before,
                "limit": limit,
            },
        }

    def get_version(self, slug: str, handle: str, number: int) -> dict[str, Any]:
        with self.lock:
            flow = self._notiflow(slug, handle)
            version = self._version(flow, number)
            if version is None:
                raise not_found("version", str(number))
            result = self._version_json(flow, version)
            assert result is not None
            return copy.deepcopy(result)

    # ---- simulated dashboard activity --------------------------------------------------------

    def dashboard_edit(
        self, slug: str, handle: str, patch: Mapping[str, Any] | None = None, publish: bool = False
    ) -> dict[str, Any]:
        """A member edits the notiflow in the dashboard: a new draft by "Dashboard User".

        patch keys: name / active / include_in_preferences / steps (full replace), and
        `step_updates` {step_handle: {field: value}}, `template_updates` {step_handle: {data_key: value}}.
        Without a patch the notiflow's name gets " (edited in dashboard)" appended.
        """
        with self._write_lock:
            with self.lock:
                # All or nothing: the edit is made on a copy, kept only if publishing (when asked) works.
                work = copy.deepcopy(self._notiflow(slug, handle))
                current = self._version(work, work["current"])
                assert current is not None
                new = copy.deepcopy(current["content"])
                _apply_patch(new, dict(patch) if patch else {"name": f"{new['name']} (edited in dashboard)"})
                new = C.drop_nulls(new)
                check_content(new)
                changed = C.content_sha(new) != current["sha"]
                if changed:
                    self._new_version(work, new, MEMBER_ACTOR)
                if publish:
                    changed = self._publish(work, MEMBER_ACTOR) or changed
                result = copy.deepcopy(self._full(work))
                projects = self._with_flow(slug, handle, work)
            if changed:
                self._commit(projects, (slug, handle))
        return result

    def create_remote_only(
        self, slug: str, handle: str, name: str | None = None, steps: list[dict[str, Any]] | None = None,
        publish: bool = False, active: bool = True, include_in_preferences: bool = True,
    ) -> dict[str, Any]:
        """A notiflow created in the dashboard (never in the repo)."""
        new = C.drop_nulls({
            "name": name or handle.replace("-", " ").title(),
            "active": active,
            "include_in_preferences": include_in_preferences,
            "steps": copy.deepcopy(steps if steps is not None else DEFAULT_REMOTE_STEPS),
        })
        check_content(new)
        with self._write_lock:
            with self.lock:
                if handle in self._project(slug)["notiflows"]:
                    raise ApiProblem(409, "conflict", "The notiflow already exists",
                                     {"resource": "notiflow", "id": handle})
                flow = self._blank_flow(handle)  # inserted only once complete: a refused publish leaves no trace
                self._new_version(flow, new, MEMBER_ACTOR)
                if publish:
                    self._publish(flow, MEMBER_ACTOR)
                result = copy.deepcopy(self._full(flow))
                projects = self._with_flow(slug, handle, flow)
            self._commit(projects, (slug, handle))
        return result


def _apply_patch(content: dict[str, Any], patch: dict[str, Any]) -> None:
    for key in C.CONTENT_KEYS:
        if key in patch:
            content[key] = copy.deepcopy(patch[key])
    steps = {s.get("handle"): s for s in content.get("steps", []) if isinstance(s, dict)}
    for step_handle, changes in (patch.get("step_updates") or {}).items():
        if step_handle not in steps:
            raise ApiProblem(404, "not_found", "Step not found", {"resource": "step", "id": step_handle})
        steps[step_handle].update(copy.deepcopy(changes))
    for step_handle, changes in (patch.get("template_updates") or {}).items():
        step = steps.get(step_handle)
        if step is None:
            raise ApiProblem(404, "not_found", "Step not found", {"resource": "step", "id": step_handle})
        template = step.setdefault("template", {"channel_type": step.get("channel_type"), "data": {}})
        template.setdefault("data", {}).update(copy.deepcopy(changes))


# ---- state file shape (pure) ---------------------------------------------------------------------

_STR, _INT, _BOOL, _DICT, _LIST = "a string", "an integer", "true or false", "an object", "a list"
PROJECT_FIELDS = {"id": _STR, "name": _STR, "slug": _STR, "notiflows": _DICT}
FLOW_FIELDS = {"id": _STR, "handle": _STR, "created_at": _STR, "updated_at": _STR, "versions": _LIST,
               "current": _INT, "next_version": _INT}
VERSION_FIELDS = {"id": _STR, "version_number": _INT, "status": _STR, "sha": _STR, "content": _DICT,
                  "valid": _BOOL, "inserted_at": _STR, "updated_at": _STR, "created_by": _DICT}
CONTENT_FIELDS = {"name": _STR, "active": _BOOL, "include_in_preferences": _BOOL, "steps": _LIST}
NULLABLE_FIELDS = {"published_at": _STR, "published_by": _DICT}
VERSION_STATUSES = ("draft", "published", "archived")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    expected = {_STR: str, _BOOL: bool, _DICT: dict, _LIST: list}[kind]
    return isinstance(value, expected)


def _fields_problem(
    where: str, value: Any, fields: Mapping[str, str], nullable: Mapping[str, str] | None = None
) -> str | None:
    if not isinstance(value, dict):
        return f"{where} must be an object"
    for name, kind in fields.items():
        if not _is_kind(value.get(name), kind):
            return f"{where}.{name} must be {kind}" if name in value else f"{where}.{name} is missing"
    for name, kind in (nullable or {}).items():
        if name not in value:
            return f"{where}.{name} is missing"
        if value[name] is not None and not _is_kind(value[name], kind):
            return f"{where}.{name} must be {kind} or null"
    return None


def _flow_problem(where: str, flow: Any) -> str | None:
    problem = _fields_problem(where, flow, FLOW_FIELDS)
    if problem is not None:
        return problem
    if "published" not in flow or not (flow["published"] is None or _is_kind(flow["published"], _INT)):
        return f"{where}.published must be a version number or null"
    numbers: list[int] = []
    for i, version in enumerate(flow["versions"]):
        at = f"{where}.versions[{i}]"
        problem = _fields_problem(at, version, VERSION_FIELDS, NULLABLE_FIELDS) or _fields_problem(
            f"{at}.content", version["content"], CONTENT_FIELDS)
        if problem is not None:
            return problem
        if version["status"] not in VERSION_STATUSES:
            return f"{at}.status must be one of {', '.join(VERSION_STATUSES)}"
        numbers.append(version["version_number"])
    if len(set(numbers)) != len(numbers):
        return f"{where}.versions repeats a version_number"
    if flow["current"] not in numbers:
        return f"{where}.current ({flow['current']}) is not one of its versions"
    if flow["published"] is not None and flow["published"] not in numbers:
        return f"{where}.published ({flow['published']}) is not one of its versions"
    if flow["next_version"] <= max(numbers):
        return f"{where}.next_version must be greater than every version_number"
    return None


def state_problem(projects: Mapping[str, Any]) -> str | None:
    """The first shape error of a state file's `projects` (what the store reads), or None."""
    for slug, project in projects.items():
        where = f"projects.{slug}"
        problem = _fields_problem(where, project, PROJECT_FIELDS)
        if problem is not None:
            return problem
        for handle, flow in project["notiflows"].items():
            problem = _flow_problem(f"{where}.notiflows.{handle}", flow)
            if problem is not None:
                return problem
    return None


def check_content(content: dict[str, Any]) -> None:
    """Simulated dashboard content must keep the stored shape (else the state could not be reloaded)."""
    problem = _fields_problem("content", content, CONTENT_FIELDS)
    if problem is None and not all(isinstance(step, dict) for step in content["steps"]):
        problem = "content.steps must be a list of objects"
    if problem is not None:
        raise ApiProblem(400, "bad_request", f"Bad dashboard content: {problem}", {"reason": "invalid_param"})


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
