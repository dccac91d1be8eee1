"""entrypoint.py run exactly as the Docker container action runs it, without a Docker engine.

Each run happens in a private mount namespace (`unshare --mount --propagation private`) that
rebuilds the container's filesystem under tmp_path and chroots into it:

* /app comes from the Dockerfile's COPY lines (filtered by .dockerignore, like the build context),
  the environment from its ENV lines, the argv from its exec-form ENTRYPOINT. The RUN lines are
  stood in for by the host: /usr (git) and the test venv (the runtime dependencies), bound
  read-only; the venv's bin directory takes the place of the image's /usr/local/bin on PATH.
* The runner's mounts: the workspace (a real git repository owned by uid 1001, like the host's
  runner user; the process runs as root) at /github/workspace, which is also the workdir;
  <RUNNER_TEMP>/_github_home at /github/home, _github_workflow at /github/workflow (event.json),
  _runner_file_commands at /github/file_commands (set_output_<guid>, ...). RUNNER_TEMP itself is
  a host path that does not exist in the container.
* The environment starts empty: the image's (PATH, LANG, ENV lines) plus what the runner passes
  (GITHUB_*, RUNNER_*, CI, INPUT_* for every input of action.yml with the defaults filled in).

/work/main (the editable install) is not visible inside, so the package can only come from /app.
The network namespace is shared: the emulator on 127.0.0.1 is reachable. GITHUB_API_URL points
at a closed loopback port so nothing can reach GitHub, except in the PR comment scenarios, where it
points at tests/fake_github.py on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator_support import running_emulator
from gitutil import TestRepo
from test_outputs import parse_output_file
from workflow_commands import commands_outside_fences

ROOT = Path(__file__).resolve().parent.parent
RUNNER_UID = RUNNER_GID = 1001
HOST_RUNNER_TEMP = "/home/runner/work/_temp"  # RUNNER_TEMP on a hosted runner; not mounted
# Where each step's report is, as later (host) steps see it: a name of its own per step.
HOST_REPORT_DIR = f"{HOST_RUNNER_TEMP}/_github_home/notiflows-deploy"
HOST_REPORT = re.compile(re.escape(HOST_REPORT_DIR) + r"/report-__self-[0-9a-f]{12}\.json")
GITHUB_TOKEN = "ghs_containerTestRunnerToken0001"  # what `${{ github.token }}` evaluates to
# The base image's own ENV (python:3.12-slim), with /usr/local/bin (its python) replaced by the venv.
BASE_IMAGE_PATH = "{bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_IMAGE_ENV = {"LANG": "C.UTF-8"}


# ---------------------------------------------------------------------------------------------
# The image, as the Dockerfile describes it


@dataclass
class Image:
    base: str = ""
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not buf and not stripped):
            continue  # docker drops comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, rest = buf.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued instruction"
    return out


def _exec_form(rest: str, keyword: str) -> list[str]:
    value = json.loads(rest) if rest.startswith("[") else None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} must use the exec form"
    return value


def parse_dockerfile(text: str) -> Image:
    image = Image()
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "FROM":
            image.base = rest
        elif keyword == "ENV":
            parts = shlex.split(rest)
            if all("=" in p for p in parts):
                image.env.update(p.partition("=")[::2] for p in parts)
            else:  # legacy `ENV key value with spaces`
                key, _, value = rest.partition(" ")
                image.env[key] = value.strip()
        elif keyword == "COPY":
            parts = shlex.split(rest)
            flags = [p for p in parts if p.startswith("--")]
            assert not any(f.startswith("--from") for f in flags), "multi-stage COPY is not modelled here"
            paths = [p for p in parts if not p.startswith("--")]
            image.copies.append((paths[:-1], paths[-1]))
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _exec_form(rest, keyword)
            image.cmd = []  # docker resets CMD when ENTRYPOINT is set after it
        elif keyword == "CMD":
            image.cmd = _exec_form(rest, keyword)
        elif keyword == "USER":
            image.user = rest
        elif keyword == "WORKDIR":
            image.workdir = rest
    return image


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore(context: Path) -> Callable[[str], bool]:
    """`excluded(relative posix path)` with .dockerignore rules: the last matching pattern wins, and
    a pattern also matches everything under a directory it matches."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    path = context / ".dockerignore"
    for line in (path.read_text().splitlines() if path.exists() else []):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _ignore_regex(line.lstrip("!").strip().strip("/"))))

    def excluded(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negated, regex in rules:
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negated
        return result

    return excluded


def apply_copies(image: Image, context: Path, root: Path) -> None:
    """COPY as `docker build` does it: a directory's contents go to the destination; files under
    the context that .dockerignore excludes are not there to copy."""
    excluded = dockerignore(context)
    for sources, dest in image.copies:
        for src in sources:
            source = context / src
            files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
            files = [f for f in files if not excluded(f.relative_to(context).as_posix())]
            assert files, f"COPY {src}: nothing in the build context (missing or excluded by .dockerignore)"
            into_dir = dest.endswith("/") or len(sources) > 1 or source.is_dir()
            for file in files:
                rel = file.relative_to(source) if source.is_dir() else Path(file.name)
                target = root / dest.lstrip("/") / rel if into_dir else root / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)


IMAGE = parse_dockerfile((ROOT / "Dockerfile").read_text())
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def test_dockerfile_parses_into_a_runnable_image() -> None:
    assert IMAGE.base.startswith("python:"), "BASE_IMAGE_ENV models a python:* base image"
    assert IMAGE.entrypoint[:1] == ["python"] and IMAGE.entrypoint[1].startswith("/app/")
    assert not IMAGE.user and not IMAGE.workdir  # root, workdir from the runner
    assert ACTION["runs"]["using"] == "docker" and ACTION["runs"]["image"] == "Dockerfile"
    assert "args" not in ACTION["runs"] and "entrypoint" not in ACTION["runs"]  # would change argv
    excluded = dockerignore(ROOT)
    assert excluded("tests/test_container.py") and excluded("notiflows_deploy/__pycache__/x.pyc")
    assert not excluded("notiflows_deploy/cli.py") and not excluded("entrypoint.py")


# ---------------------------------------------------------------------------------------------
# The mount namespace

# Runs under `unshare` with the host interpreter: mounts, chroot, workdir, then exec the argv.
# Exit 125 (like `docker run`) when the sandbox cannot be set up.
SETUP = r"""
import json, os, subprocess, sys
plan = json.load(open(sys.argv[1]))
try:
    for src, dst, ro in plan["binds"]:
        subprocess.run([plan["mount"], "--rbind", src, dst], check=True, capture_output=True, text=True)
        if ro:
            subprocess.run([plan["mount"], "-o", "remount,bind,ro", dst], check=True, capture_output=True, text=True)
    os.chroot(plan["root"])
    os.chdir(plan["cwd"])
except (OSError, subprocess.CalledProcessError) as exc:
    sys.stderr.write("SANDBOX-SETUP-FAILED: %s %s\n" % (exc, getattr(exc, "stderr", "")))
    sys.exit(125)
os.execvpe(plan["argv"][0], plan["argv"], plan["env"])
"""
SETUP_FAILED = 125


def interpreter_dirs() -> list[Path]:
    """What the test interpreter needs: its installation and its venv (same paths inside)."""
    dirs = {Path(os.path.realpath(sys.base_prefix)), Path(os.path.realpath(sys.prefix))}
    # Every link on the way from sys.executable to the real binary must resolve inside them.
    path = Path(sys.executable)
    for _ in range(16):
        assert any(path.parent == d or d in path.parents for d in dirs) or str(path).startswith("/usr/"), path
        if not path.is_symlink():
            break
        path = path.parent / os.readlink(path)
    return sorted(dirs)


class Container:
    """A container filesystem under `tmp_path / "rootfs"` and the runner's host directories."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "rootfs"
        host = tmp_path / "host"
        self.workspace = host / "work" / "app" / "app"
        self.temp = host / "work" / "_temp"
        self.home = self.temp / "_github_home"
        self.workflow = self.temp / "_github_workflow"
        self.file_commands = self.temp / "_runner_file_commands"
        for d in (self.home, self.workflow, self.file_commands, self.root):
            d.mkdir(parents=True, exist_ok=True)
        self.binds: list[tuple[str, str, bool]] = []
        self._build_rootfs()

    def _mount_point(self, inside: str, *, is_file: bool = False) -> Path:
        target = self.root / inside.lstrip("/")
        if is_file:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)
        return target

    def bind(self, source: Path | str, inside: str, *, ro: bool) -> None:
        source = Path(source)
        target = self._mount_point(inside, is_file=source.is_file())
        self.binds.append((str(source), str(target), ro))

    def _build_rootfs(self) -> None:
        self.bind("/usr", "/usr", ro=True)
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / name
            if host.is_symlink():  # merged /usr: the same relative link inside
                (self.root / name).symlink_to(os.readlink(host))
            elif host.is_dir():
                self.bind(host, f"/{name}", ro=True)
        self.bind("/etc", "/etc", ro=True)
        if Path("/etc/gitconfig").exists():  # the image's git has no system config; hide the host's
            empty = self.tmp / "empty-gitconfig"
            empty.touch()
            self.binds.append((str(empty), str(self.root / "etc/gitconfig"), True))
        for directory in interpreter_dirs():
            self.bind(directory, str(directory), ro=True)
        self.bind("/dev", "/dev", ro=False)
        self.bind("/proc", "/proc", ro=False)
        tmp = self._mount_point("/tmp")
        tmp.chmod(0o1777)
        apply_copies(IMAGE, ROOT, self.root)
        # The runner's mounts.
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.bind(self.workspace, "/github/workspace", ro=False)
        self.bind(self.home, "/github/home", ro=False)
        self.bind(self.workflow, "/github/workflow", ro=False)
        self.bind(self.file_commands, "/github/file_commands", ro=False)

    def image_env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.prefix) / "bin")
        return {"PATH": BASE_IMAGE_PATH.format(bin=venv_bin), **BASE_IMAGE_ENV, **IMAGE.env,
                "HOSTNAME": "container"}

    def run(self, argv: list[str], env: dict[str, str], cwd: str = "/github/workspace",
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        unshare, mount = shutil.which("unshare"), shutil.which("mount")
        assert unshare and mount
        plan = self.tmp / f"plan-{uuid.uuid4().hex}.json"
        plan.write_text(json.dumps({"mount": mount, "binds": self.binds, "root": str(self.root), "cwd": cwd,
                                    "argv": argv, "env": env}))
        return subprocess.run(
            [unshare, "--mount", "--propagation", "private", "--", sys.executable, "-I", "-c", SETUP, str(plan)],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, cwd=self.tmp,
        )


@pytest.fixture(scope="module", autouse=True)
def _needs_namespaces(tmp_path_factory: pytest.TempPathFactory) -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux for a private mount namespace and chroot")
    if not (shutil.which("unshare") and shutil.which("mount")):
        pytest.skip("needs util-linux `unshare` and `mount`")
    box = Container(tmp_path_factory.mktemp("nsprobe"))
    try:
        proc = box.run(["/bin/sh", "-c", "exit 0"], {"PATH": "/usr/bin:/bin"}, cwd="/", timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run unshare: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot build a mount namespace + chroot here: {proc.stderr.strip()[-500:]}")


# ---------------------------------------------------------------------------------------------
# The runner's side


def input_env(with_: dict[str, str]) -> dict[str, str]:
    """INPUT_<NAME> for every declared input (`with:` value or the default), as the runner does."""
    env: dict[str, str] = {}
    inputs: dict[str, Any] = ACTION["inputs"]
    for name, spec in inputs.items():
        value = str(with_[name]) if name in with_ else str(spec.get("default", ""))
        if value.strip() == "${{ github.token }}":
            value = GITHUB_TOKEN
        assert "${{" not in value, f"unmodelled expression in the default of {name}"
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = value
    for name, value in with_.items():  # undeclared keys still arrive (with a warning)
        env.setdefault(f"INPUT_{name.replace(' ', '_').upper()}", value)
    return env


@dataclass
class Step:
    proc: subprocess.CompletedProcess[str]
    files: dict[str, Path]

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def out(self) -> str:
        return self.proc.stdout

    @property
    def err(self) -> str:
        return self.proc.stderr

    def outputs(self) -> dict[str, str]:
        return parse_output_file(self.files["GITHUB_OUTPUT"].read_text(encoding="utf-8"))

    def summary(self) -> str:
        return self.files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")

    def report_file(self, box: Container) -> Path:
        """The file `report-path` names, found where the host keeps /github/home."""
        shown = self.outputs()["report-path"]
        assert HOST_REPORT.fullmatch(shown), shown
        return box.home / "notiflows-deploy" / Path(shown).name


def chown_tree(path: Path, uid: int = RUNNER_UID, gid: int = RUNNER_GID) -> None:
    os.lchown(path, uid, gid)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), uid, gid)


def run_action(box: Container, *, event_name: str, event: dict[str, Any], sha: str, ref: str,
               with_: dict[str, str], step_env: dict[str, str] | None = None,
               github_api_url: str = "http://127.0.0.1:9") -> Step:
    """One `uses: ./` step: fresh file-command files, event.json, then the container's argv."""
    (box.workflow / "event.json").write_text(json.dumps(event))
    files: dict[str, Path] = {}
    for var, prefix in (("GITHUB_OUTPUT", "set_output"), ("GITHUB_STEP_SUMMARY", "step_summary"),
                        ("GITHUB_ENV", "set_env"), ("GITHUB_STATE", "save_state"), ("GITHUB_PATH", "add_path")):
        host = box.file_commands / f"{prefix}_{uuid.uuid4()}"
        host.touch()
        files[var] = host
    chown_tree(box.temp)
    ref_name = ref.split("/", 2)[-1]
    pr = event_name.startswith("pull_request")
    env = box.image_env()
    env.update(step_env or {})
    env.update(input_env(with_))
    env.update(
        HOME="/github/home", GITHUB_WORKSPACE="/github/workspace", GITHUB_EVENT_PATH="/github/workflow/event.json",
        **{var: f"/github/file_commands/{path.name}" for var, path in files.items()},
        RUNNER_TEMP=HOST_RUNNER_TEMP, RUNNER_TOOL_CACHE="/opt/hostedtoolcache",
        RUNNER_WORKSPACE="/home/runner/work/app",
        RUNNER_OS="Linux", RUNNER_ARCH="X64", RUNNER_NAME="GitHub Actions 2", RUNNER_ENVIRONMENT="github-hosted",
        GITHUB_ACTIONS="true", CI="true", GITHUB_EVENT_NAME=event_name, GITHUB_SHA=sha, GITHUB_REF=ref,
        GITHUB_REF_NAME=ref_name, GITHUB_REF_TYPE="branch", GITHUB_REF_PROTECTED="false",
        GITHUB_BASE_REF=event.get("pull_request", {}).get("base", {}).get("ref", "") if pr else "",
        GITHUB_HEAD_REF=event.get("pull_request", {}).get("head", {}).get("ref", "") if pr else "",
        GITHUB_REPOSITORY="octo/app", GITHUB_REPOSITORY_OWNER="octo", GITHUB_ACTOR="octocat",
        GITHUB_TRIGGERING_ACTOR="octocat", GITHUB_RUN_ID="7001", GITHUB_RUN_NUMBER="12", GITHUB_RUN_ATTEMPT="1",
        GITHUB_JOB="notiflows", GITHUB_WORKFLOW="notiflows", GITHUB_ACTION="__self", GITHUB_RETENTION_DAYS="90",
        GITHUB_SERVER_URL="https://github.com", GITHUB_API_URL=github_api_url,
        GITHUB_GRAPHQL_URL="http://127.0.0.1:9/graphql",
    )
    proc = box.run(IMAGE.entrypoint + IMAGE.cmd, env)
    assert proc.returncode != SETUP_FAILED, proc.stderr
    return Step(proc, files)


def snapshot(path: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under `path` (the .git directory too): (size, mtime_ns, uid, mode)."""
    result = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            st = os.lstat(full)
            result[os.path.relpath(full, path)] = (st.st_size if not os.path.isdir(full) else 0, st.st_mtime_ns,
                                                    st.st_uid, st.st_mode)
    return result


def host_git_status(repo: Path) -> str:
    """`git status` as the host sees it (root here, so trust the repo on the command line)."""
    proc = subprocess.run(["git", "-c", f"safe.directory={repo}", "status", "--porcelain"], cwd=repo,
                          env={"PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                               "GIT_OPTIONAL_LOCKS": "0", "HOME": str(repo)},
                          capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture
def box(tmp_path: Path) -> Container:
    return Container(tmp_path)


@pytest.fixture
def emulator() -> Iterator[Any]:
    with running_emulator() as emu:
        yield emu


def new_repo(box: Container) -> TestRepo:
    repo = TestRepo(box.workspace)
    repo.config({"notiflowsDir": ".notiflows", "project": "demo"})
    repo.add_notiflow("welcome-series")
    repo.commit("initial")
    return repo


# ---------------------------------------------------------------------------------------------
# The image itself


def test_package_and_python_come_from_the_image_layout(box: Container) -> None:
    source = repr(str(ROOT / "notiflows_deploy"))
    probe = (
        "import json, os, sys\n"
        "r = {'cwd': os.getcwd(), 'exe': sys.executable, 'work_main': os.path.exists(" + source + "),\n"
        "     'uid': os.getuid(), 'env': sorted(os.environ)}\n"
        "try:\n    import notiflows_deploy\n    r['bare'] = notiflows_deploy.__file__\n"
        "except ImportError as e:\n    r['bare'] = 'ImportError'\n"
        "sys.modules.pop('notiflows_deploy', None)\n"
        "sys.path.insert(0, '/app')  # what running /app/entrypoint.py does\n"
        "import notiflows_deploy, requests, jsonschema, yaml, git\n"
        "r['app'] = notiflows_deploy.__file__\n"
        "print(json.dumps(r))\n"
    )
    env = box.image_env()
    proc = box.run([IMAGE.entrypoint[0], "-c", probe], env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["work_main"] is False  # the editable install's source is out of reach
    assert seen["bare"] == "ImportError"
    assert seen["app"] == "/app/notiflows_deploy/__init__.py"
    assert seen["cwd"] == "/github/workspace" and seen["uid"] == 0
    assert seen["exe"].startswith(str(Path(sys.prefix) / "bin"))
    assert sorted(env) == seen["env"]  # nothing from the host leaks in
    assert not (box.root / "app" / "notiflows_deploy" / "__pycache__").exists()  # .dockerignore + ENV honoured


def test_plain_git_in_the_container_sees_dubious_ownership(box: Container) -> None:
    """The layout reproduces the problem the entrypoint must handle (no host config hides it)."""
    new_repo(box)
    chown_tree(box.workspace)
    proc = box.run(["git", "status"], box.image_env() | {"HOME": "/github/home"})
    assert proc.returncode == 128 and "dubious ownership" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------
# Scenarios


def test_push_deploy(box: Container, emulator: Any) -> None:
    repo = new_repo(box)
    before = repo.sha()
    repo.add_notiflow("order-shipped")
    after = repo.commit("add order shipped")
    chown_tree(box.workspace)
    ws_before = snapshot(box.workspace)
    event = {"ref": "refs/heads/main", "before": before, "after": after, "created": False, "deleted": False,
             "forced": False, "repository": {"default_branch": "main", "full_name": "octo/app"}}
    step = run_action(box, event_name="push", event=event, sha=after, ref="refs/heads/main",
                      with_={"mode": "deploy", "token": emulator.token, "project": "demo",
                             "api-url": emulator.base_url})
    log = step.out + step.err
    assert step.code == 0, log
    assert "dubious ownership" not in log and "Traceback" not in log
    outputs = step.outputs()
    assert outputs["result"] == "success"
    assert json.loads(outputs["deployed"]) == ["order-shipped"]
    # The file is where the host sees /github/home: <RUNNER_TEMP>/_github_home/...
    report_file = step.report_file(box)
    assert report_file.stat().st_mode & 0o004  # root wrote it; the runner user (1001) must read it
    # ... and, like everything in the runner's temp, own it (a self-hosted runner deletes it later).
    for path in (report_file.parent, report_file):
        assert (path.stat().st_uid, path.stat().st_gid) == (RUNNER_UID, RUNNER_GID), path
    report = json.loads(report_file.read_text())
    assert report["mode"] == "deploy" and report["result"] == "success" and report["head"] == after
    statuses = {n["handle"]: n["status"] for n in report["notiflows"]}
    assert statuses["order-shipped"] == "created"
    assert emulator.store.get_notiflow("demo", "order-shipped")["current_version"]["sha"]
    assert "order-shipped" in step.summary()
    # The file-command files are appended to in place (the runner holds their paths), and only
    # the output and summary files are used.
    assert all(path.stat().st_uid == RUNNER_UID for path in step.files.values())
    assert not any(step.files[v].read_text() for v in ("GITHUB_ENV", "GITHUB_STATE", "GITHUB_PATH"))
    # The workspace is untouched (nothing added, nothing rewritten as root, index included).
    assert snapshot(box.workspace) == ws_before
    assert host_git_status(box.workspace) == ""
    # No global git config was written into the job-wide HOME.
    assert not (box.home / ".gitconfig").exists() and not (box.home / ".config" / "git").exists()


def test_pull_request_plan_on_the_merge_commit(box: Container, emulator: Any) -> None:
    repo = new_repo(box)
    base = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    repo.add_notiflow("password-reset")
    head = repo.commit("add password reset")
    # actions/checkout on pull_request: a detached HEAD at refs/pull/N/merge (base + head merged).
    repo.git("checkout", "-q", "--detach", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", f"Merge {head} into {base}")
    merge = repo.sha()
    repo.git("update-ref", "refs/remotes/pull/5/merge", merge)
    chown_tree(box.workspace)
    ws_before = snapshot(box.workspace)
    event = {"action": "synchronize", "number": 5,
             "pull_request": {"number": 5, "base": {"sha": base, "ref": "main"},
                              "head": {"sha": head, "ref": "feature"}},
             "repository": {"default_branch": "main", "full_name": "octo/app"}}
    step = run_action(box, event_name="pull_request", event=event, sha=merge, ref="refs/pull/5/merge",
                      with_={"mode": "plan", "token": emulator.token, "project": "demo",
                             "api-url": emulator.base_url})
    log = step.out + step.err
    assert step.code == 0, log
    assert "dubious ownership" not in log and "Traceback" not in log
    outputs = step.outputs()
    assert outputs["result"] == "success"
    assert json.loads(outputs["changed"]) == ["password-reset"]
    assert json.loads(outputs["deployed"]) == []
    report = json.loads(step.report_file(box).read_text())
    # The plan is of the pull request's own range (its head); the merge commit is only noted.
    assert report["mode"] == "plan" and report["base"] == base and report["head"] == head
    assert "password-reset" in step.summary()
    assert emulator.store.list_notiflows("demo")["items"] == []  # a plan writes nothing
    assert snapshot(box.workspace) == ws_before


def test_bad_input_is_one_error_line(box: Container) -> None:
    sha = new_repo(box).sha()
    chown_tree(box.workspace)
    step = run_action(box, event_name="push", event={"ref": "refs/heads/main"}, sha=sha,
                      ref="refs/heads/main", with_={"mode": "deploy", "token": "nf_at_whatever",
                                                    "concurrency": "abc"})
    assert step.code == 1
    log = (step.out + step.err).splitlines()
    errors = [ln for ln in log if ln.startswith("::error")]
    assert len(errors) == 1, log
    assert "concurrency" in errors[0]
    assert not any("Traceback" in ln for ln in log)
    assert step.err == ""


def test_a_run_that_stops_early_is_one_error_annotation(box: Container, emulator: Any) -> None:
    """A wrong token stops the run before any notiflow: the reason is an ::error, not only log text."""
    sha = new_repo(box).sha()
    chown_tree(box.workspace)
    event = {"ref": "refs/heads/main", "before": sha, "after": sha, "created": False, "deleted": False,
             "forced": False, "repository": {"default_branch": "main", "full_name": "octo/app"}}
    step = run_action(box, event_name="push", event=event, sha=sha, ref="refs/heads/main",
                      with_={"mode": "plan", "token": "nf_at_wrong_token_123", "project": "demo",
                             "api-url": emulator.base_url})
    assert step.code == 1
    errors = [c for c in commands_outside_fences(step.out) if c.startswith("::error")]
    assert len(errors) == 1, step.out
    assert errors[0].startswith("::error title=notiflows-deploy%3A stopped::Authentication required")
    assert "file=" not in errors[0] and step.outputs()["result"] == "error"


SECRET_TOKEN = "nf_at_c0nta1ner_S3CRET_t0ken_7f3e"
SECRET_VALUE = "whsec_Env5ubst1tuted_VALUE_91ab"


@pytest.mark.parametrize("mode", ["plan", "deploy"])
def test_secrets_never_leak(box: Container, mode: str) -> None:
    with running_emulator(tokens=[SECRET_TOKEN]) as emulator:
        repo = new_repo(box)
        before = repo.sha()
        repo.add_notiflow("webhook-notice", body="<p>signed with ${WEBHOOK_SECRET}</p>\n")
        after = repo.commit("webhook notice")
        chown_tree(box.workspace)
        event = {"ref": "refs/heads/main", "before": before, "after": after, "created": False, "deleted": False,
                 "forced": False, "repository": {"default_branch": "main", "full_name": "octo/app"}}
        step = run_action(box, event_name="push", event=event, sha=after, ref="refs/heads/main",
                          with_={"mode": mode, "token": SECRET_TOKEN, "project": "demo",
                                 "api-url": emulator.base_url},
                          step_env={"WEBHOOK_SECRET": SECRET_VALUE})  # `env: WEBHOOK_SECRET: ${{ secrets.X }}`
        assert step.code == 0, step.out + step.err
        lines = step.out.splitlines()
        masks = [ln for ln in lines if ln.startswith("::add-mask::")]
        assert lines[: len(masks)] == masks, "an ::add-mask:: line comes after other output"
        assert f"::add-mask::{SECRET_TOKEN}" in masks and f"::add-mask::{SECRET_VALUE}" in masks
        for secret in (SECRET_TOKEN, SECRET_VALUE):
            assert not [ln for ln in lines if secret in ln and not ln.startswith("::add-mask::")]
            assert secret not in step.err
            assert secret not in step.files["GITHUB_OUTPUT"].read_text()
            assert secret not in step.summary()
            assert secret not in step.report_file(box).read_text()
        outputs = step.outputs()
        assert "webhook-notice" in json.loads(outputs["changed"])
        report = json.loads(step.report_file(box).read_text())
        diff = next(n["diff"] for n in report["notiflows"] if n["handle"] == "webhook-notice")
        assert "***" in diff  # the field holding the substituted value is shown redacted
        if mode == "deploy":  # the value itself did reach the server: the substitution happened
            sent = json.dumps(emulator.store.get_notiflow("demo", "webhook-notice"))
            assert SECRET_VALUE in sent


# ---------------------------------------------------------------------------------------------
# The pull-request comment, end to end: entrypoint -> CLI -> emulator and the fake GitHub REST API


def _pull_request(box: Container, number: int, flows: int) -> tuple[TestRepo, dict[str, Any], str, str]:
    """A PR adding `flows` notiflows with big bodies (a plan far longer than a comment may be)."""
    repo = new_repo(box)
    base = repo.sha()
    repo.git("checkout", "-q", "-b", "feature")
    lines = "\n".join(f"<p>line {i}: {'lorem ipsum dolor sit amet ' * 4}</p>" for i in range(40))
    for i in range(flows):
        repo.add_notiflow(f"flow-{i:03d}", body=f"<h1>flow {i}</h1>\n{lines}\n")
    head = repo.commit("many notiflows")
    repo.git("checkout", "-q", "--detach", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", f"Merge {head} into {base}")
    event = {"action": "synchronize", "number": number,
             "pull_request": {"number": number, "base": {"sha": base, "ref": "main", "repo": {"full_name": "octo/app"}},
                              "head": {"sha": head, "ref": "feature", "repo": {"full_name": "octo/app"}}},
             "repository": {"default_branch": "main", "full_name": "octo/app"}}
    return repo, event, repo.sha(), head


def test_pull_request_comment_created_then_updated_in_place(box: Container, emulator: Any) -> None:
    from fake_github import MAX_BODY, FakeGitHub, serve

    repo, event, merge, _ = _pull_request(box, 12, flows=30)
    chown_tree(box.workspace)
    with_ = {"mode": "plan", "token": emulator.token, "project": "demo", "api-url": emulator.base_url,
             "comment-on-pr": "true"}
    with serve(FakeGitHub(token=GITHUB_TOKEN)) as gh:
        first = run_action(box, event_name="pull_request", event=event, sha=merge, ref="refs/pull/12/merge",
                           with_=with_, github_api_url=gh.url)
        assert first.code == 0, first.out + first.err
        assert len(gh.comments[12]) == 1
        created = dict(gh.comments[12][0])
        # The PR gets a new commit; the next run updates the same comment instead of adding one.
        chown_tree(box.workspace, 0, 0)  # the host's git (root here) refuses a checkout it does not own
        repo.git("checkout", "-q", "feature")
        repo.add_notiflow("late-addition")
        head = repo.commit("one more")
        repo.git("checkout", "-q", "--detach", "main")
        repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge again")
        event["pull_request"]["head"]["sha"] = head
        merge = repo.sha()
        chown_tree(box.workspace)
        second = run_action(box, event_name="pull_request", event=event, sha=merge, ref="refs/pull/12/merge",
                            with_=with_, github_api_url=gh.url)
    assert second.code == 0, second.out + second.err
    (comment,) = gh.comments[12]
    assert comment["id"] == created["id"]
    methods = [(m, path.split("?")[0]) for m, path, _ in gh.requests if m != "GET"]
    assert methods == [("POST", "/repos/octo/app/issues/12/comments"),
                       ("PATCH", f"/repos/octo/app/issues/comments/{created['id']}")]
    body = comment["body"]
    assert body.startswith("<!-- notiflows-deploy:plan -->") and len(body) <= MAX_BODY
    assert "late-addition" in body and "late-addition" not in created["body"]
    assert "more notiflows in the JSON report" in body or "Details of" in body  # cut to fit, and says so
    assert len(second.summary()) > len(body)  # the job summary keeps what the comment had no room for
    assert "actions/runs/7001" in body
    for step in (first, second):
        unmasked = [ln for ln in (step.out + step.err).splitlines() if not ln.startswith("::add-mask::")]
        assert not [ln for ln in unmasked if GITHUB_TOKEN in ln] and GITHUB_TOKEN not in body
        assert not [c for c in commands_outside_fences(step.out + "\n" + step.err) if c.startswith("::warning")]


def test_pull_request_comment_403_is_a_warning_not_a_failure(box: Container, emulator: Any) -> None:
    """A fork's read-only token: GitHub answers 403 "Resource not accessible by integration"."""
    from fake_github import FakeGitHub, serve

    _, event, merge, _ = _pull_request(box, 13, flows=2)
    chown_tree(box.workspace)
    with serve(FakeGitHub(token=GITHUB_TOKEN, forbid_writes=True)) as gh:
        step = run_action(box, event_name="pull_request", event=event, sha=merge, ref="refs/pull/13/merge",
                          with_={"mode": "plan", "token": emulator.token, "project": "demo",
                                 "api-url": emulator.base_url, "comment-on-pr": "true"},
                          github_api_url=gh.url)
    assert step.code == 0, step.out + step.err
    assert gh.comments.get(13) is None and [m for m, _, _ in gh.requests].count("POST") == 1
    assert step.outputs()["result"] == "success"
    # Every workflow command is on stdout, outside any fence: the runner reads both pipes with one
    # parser, and a command on stderr could arrive while a stdout fence is open and be ignored.
    assert "::" not in step.err
    warnings = [c for c in commands_outside_fences(step.out) if c.startswith("::warning")]
    assert len(warnings) == 1, step.out
    assert "HTTP 403" in warnings[0] and "Resource not accessible by integration" in warnings[0]
    assert "job summary" in warnings[0]
