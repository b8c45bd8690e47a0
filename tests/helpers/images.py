"""What the container images install, reproduced without Docker.

A Dockerfile is read for its ``COPY`` lines and its one ``pip install`` of the project;
the copied files are staged as the image sees them, built into a wheel, and the wheel is
installed with the extras the Dockerfile names into a target directory, for the images'
Python version and platform (wheels only, as pip inside the image would pick them). Used
by tests/test_infra/test_images.py and bench/cold_start.py.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
PYTHON_VERSION = "3.12"  # both images: public.ecr.aws/lambda/python:3.12 and python:3.12-slim-bookworm
# The older of the two images' glibc: Amazon Linux 2023 has 2.34 (Debian bookworm 2.36). pip
# does not extend a manylinux_2_X platform to older tags by itself, so every one is named.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + ["manylinux2014_x86_64"]
# In both base images without installing anything: glibc, the C++ runtime, zlib (the
# interpreter's own zlib module needs it).
BASE_IMAGE_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
                        "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1"}
# A library a wheel expects from the system -> the package that provides it, per package manager.
# (numba's OpenMP threading layer names the file libgomp.so.1.0.0 rather than the soname.)
SYSTEM_PACKAGES = {"libgomp.so.1": {"dnf": "libgomp", "apt": "libgomp1"},
                   "libgomp.so.1.0.0": {"dnf": "libgomp", "apt": "libgomp1"}}

# Libraries that only an optional part of a wheel needs, which the library loads when it can
# and skips otherwise: library -> {the shared object that needs it: why it may be missing}.
OPTIONAL_LIBRARIES = {"libtbb.so.12": {
    "numba/np/ufunc/tbbpool.cpython-312-x86_64-linux-gnu.so":
        "numba's TBB threading layer: tried first and skipped without TBB (then OpenMP, then its own "
        "work queue); the project runs no parallel numba code"}}


def lambda_python() -> str | None:
    """A Python 3.12 interpreter with pip (the images' version), or None."""
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("FRAUD_IMAGE_PYTHON"), shutil.which("python3.12"),
                  *sorted(glob.glob(f"{pyenv}/versions/3.12*/bin/python3.12"), reverse=True),
                  "/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys, pip; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 12)":
            return candidate
    return None


@dataclass
class ImageInstall:
    """The one ``pip install`` of the project in a Dockerfile."""

    dockerfile: Path
    project: PurePosixPath            # where the project lies in the image when pip runs
    extras: frozenset[str]
    options: list[str]                # pip's options, e.g. ["--no-cache-dir", "--target", "${LAMBDA_TASK_ROOT}"]
    copies: list[tuple[list[str], PurePosixPath, bool]]  # (sources in the context, destination, is a directory)
    base_image: str
    entrypoint: list[str]
    cmd: list[str]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


# pip install options that take a value
_PIP_VALUE_OPTIONS = {"-t", "--target", "--prefix", "--root", "-c", "--constraint", "-i", "--index-url",
                      "--extra-index-url", "-f", "--find-links", "--platform", "--python-version",
                      "--implementation", "--abi", "--only-binary", "--no-binary", "--cache-dir", "--progress-bar",
                      "--upgrade-strategy"}


def read_dockerfile(path: Path) -> ImageInstall:
    """Parse ``path``: its COPY lines, its one ``pip install`` of a local project (a path with
    extras; no requirements file, nothing else named beside it), ENTRYPOINT and CMD."""
    import json

    workdir = PurePosixPath("/")
    copies, installs, entrypoint, cmd, base = [], [], [], [], ""
    for word, args in _instructions(path.read_text()):
        if word == "FROM":
            base = args.split()[0]
        elif word == "WORKDIR":
            workdir = workdir / args
        elif word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            copies.append((parts[:-1], workdir / parts[-1], parts[-1].endswith("/") or len(parts) > 2))
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(args)
        elif word == "CMD":
            cmd = json.loads(args)
        elif word == "RUN" and "pip install" in args:
            for command in re.split(r"&&|;", args):
                tokens = shlex.split(command)
                if "pip" in tokens and "install" in tokens:
                    tokens = tokens[tokens.index("install") + 1:]
                    installs.append(tokens)
    assert len(installs) == 1, f"{path.name}: expected one `pip install`, found {len(installs)}: {installs}"
    options, requirements, tokens = [], [], iter(installs[0])
    for token in tokens:
        if token in ("-r", "--requirement", "-e", "--editable") or token.startswith(("--requirement=", "-r")):
            raise AssertionError(f"{path.name} installs {token!r}: the image must install the project itself, "
                                 "with its extras, so that pyproject.toml alone defines what it contains")
        if token.startswith("-"):
            options.append(token)
            if token in _PIP_VALUE_OPTIONS:
                options.append(next(tokens))
        else:
            requirements.append(token)
    assert len(requirements) == 1, f"{path.name}: pip installs {requirements}; expected the project alone"
    match = re.fullmatch(r"(?P<path>[^\[\]]+?)/?(\[(?P<extras>[^\]]*)\])?", requirements[0])
    assert match and match["path"].startswith(("/", ".")), f"{path.name}: {requirements[0]!r} is not a local path"
    extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
    return ImageInstall(dockerfile=path, project=workdir / match["path"], extras=extras, options=options,
                        copies=copies, base_image=base, entrypoint=entrypoint, cmd=cmd)


def _ignored(_directory, names):
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))]


def stage_project(install: ImageInstall, staging: Path) -> Path:
    """Copy what the Dockerfile copies under the project's path into ``staging``, as the
    image lays it out; returns the project directory there."""
    project = staging / install.project.relative_to("/")
    for sources, dest, into_directory in install.copies:
        if not (dest == install.project or install.project in dest.parents):
            continue
        target = staging / dest.relative_to("/")
        for source in sources:
            src = ROOT / source
            if src.is_dir():  # Docker copies a directory's contents
                shutil.copytree(src, target, ignore=_ignored, dirs_exist_ok=True)
            elif into_directory or target.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    assert (project / "pyproject.toml").is_file(), f"{install.dockerfile.name} copies no pyproject.toml to " \
                                                   f"{install.project}"
    return project


def _run(command: list[str], what: str, timeout: int = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{what} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


def install_image(python: str, dockerfile: Path, workdir: Path, target: Path, compile: bool = True) -> ImageInstall:
    """Install into ``target`` what ``dockerfile`` installs: the project as the image copies
    it, built into a wheel, with the Dockerfile's extras, for the images' Python and
    platform (binary wheels only). ``compile=False`` skips writing .pyc files for every
    module (as pip in the image does), which is most of the install's time."""
    install = read_dockerfile(dockerfile)
    project = stage_project(install, workdir / "context")
    wheels = workdir / "wheel"
    _run([python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(project)],
         f"building the wheel of {install.project}")
    (wheel,) = wheels.glob("*.whl")
    extras = f"[{','.join(sorted(install.extras))}]" if install.extras else ""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target),
          *([] if compile else ["--no-compile"]),
          "--python-version", PYTHON_VERSION, *platforms, "--only-binary=:all:", f"{wheel}{extras}"],
         f"pip install {wheel.name}{extras}")
    return install


def distributions(target: Path) -> dict[str, str]:
    """Installed distributions in ``target``: normalised name -> version."""
    out = {}
    for info in target.glob("*.dist-info"):
        meta = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.MULTILINE)[1].strip()
        version = re.search(r"^Version: (.+)$", meta, re.MULTILINE)[1].strip()
        out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def shared_objects(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*") if p.is_file() and not p.is_symlink()
                  and (p.name.endswith(".so") or ".so." in p.name))


def needed_libraries(library: Path) -> list[str]:
    """The ELF NEEDED entries of ``library`` (readelf from binutils)."""
    out = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, env={"LC_ALL": "C"})
    assert out.returncode == 0, f"readelf -d {library}: {out.stderr}"
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def system_libraries_needed(target: Path) -> dict[str, list[str]]:
    """Libraries that shared objects in ``target`` need and neither ``target`` bundles nor
    the base images provide: library -> the objects that need it."""
    objects = shared_objects(target)
    bundled = {p.name for p in objects}
    missing: dict[str, list[str]] = {}
    for obj in objects:
        for lib in needed_libraries(obj):
            user = str(obj.relative_to(target))
            if lib not in bundled and lib not in BASE_IMAGE_LIBRARIES and \
                    user not in OPTIONAL_LIBRARIES.get(lib, {}):
                missing.setdefault(lib, []).append(user)
    return missing


def package_manager(base_image: str) -> str:
    """dnf for the Lambda (Amazon Linux 2023) base, apt for Debian's."""
    if "lambda/" in base_image or "amazonlinux" in base_image:
        return "dnf"
    if base_image.startswith(("python:", "debian:")):
        return "apt"
    raise AssertionError(f"unknown base image {base_image!r}: which package manager installs its libraries?")


def installed_system_packages(dockerfile: Path) -> dict[str, set[str]]:
    """Packages the Dockerfile installs with each package manager (versions stripped)."""
    out: dict[str, set[str]] = {"apt": set(), "dnf": set()}
    for word, args in _instructions(dockerfile.read_text()):
        if word != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            tokens = shlex.split(command)
            for manager, names in (("apt", ("apt-get", "apt")), ("dnf", ("dnf", "microdnf", "yum"))):
                if tokens and tokens[0] in names and "install" in tokens:
                    for token in tokens[tokens.index("install") + 1:]:
                        if not token.startswith("-"):
                            name = token.split("=")[0] if manager == "apt" else re.sub(r"-\d.*$", "", token)
                            out[manager].add(name)
    return out


def du(path: Path) -> int:
    """Bytes of the files under ``path`` (as `du -sb` counts them, links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
