"""Install the ROS 2 packages that PyPI has no wheels of into a venv, out of tree and idempotently.

Why: the nodes publish vision_msgs / hri_msgs types (and head poses on /tf as tf2_msgs/TFMessage) and are
started by the real launch system, and the tests must use the same message types and launch code a robot
uses. PyPI has rclpy and the rosidl generators but not these packages, so this script builds them from
their unchanged upstream sources:

- vision_msgs, hri_msgs, tf2_msgs, composition_interfaces: plain cmake with the PyPI rosidl generators,
  installed into the venv prefix (no colcon, nothing to source: the ros wheels' .pth puts $VENV/lib on
  LD_LIBRARY_PATH). tf2_msgs depends on geometry_msgs and builtin_interfaces and, for its LookupTransform
  action, on action_msgs and unique_identifier_msgs: all ros-* wheels (rclpy's and sensor_msgs' own
  dependencies, locked in constraints*.txt);
- launch, launch_ros: pure Python, `pip install --no-deps --no-build-isolation` (their deps are pinned in
  requirements-common.txt / the ros wheels);
- sros2 (SROS2 keystores, enclaves, permissions from policies; tests generate the permissions of
  config/sros2/): pure Python like launch, with one line adapted to current `cryptography` (RosPackage.patches,
  applied to the copy that pip installs); its data files give the ament index what `import sros2` looks up
  (share/sros2/xml_cache and the resource_index marker in the venv prefix, so AMENT_PREFIX_PATH must hold the
  venv, as for launch_ros).

Sources: ../shared/ros_interfaces, ../shared/ros_launch and ../shared/ros_security next to the checkout (dev
machines, CI), else a
git clone of upstream at the pinned release (a user's machine), cached under the build dir. A package that
is already importable from outside the venv (apt ROS sourced) is left alone. Each package has a stamp in the
venv keyed by its sources, the installed ros-* wheels and this recipe: a re-run with nothing changed does
no work (~1-2 s in all). See DESIGN.md "Building interface packages here".

Usage: python setup/ros_packages.py --venv .venv --build-dir build/kilted [--shared ../shared]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RECIPE_VERSION = "1"  # bump to force a rebuild everywhere when the build steps below change
JOBS = os.environ.get("EDGE_INFER_BUILD_JOBS", "2")


@dataclass(frozen=True)
class RosPackage:
    """One upstream package: where its sources are and how it is installed."""

    name: str
    kind: str  # "cmake" (rosidl interface package) or "pip" (pure Python)
    shared_dir: str  # relative to ../shared
    repo_url: str
    refs: tuple[str, ...]  # tried in order: the pinned commit (where known), then the release tag
    branch: str  # fallback: the commit on this branch that set package.xml to `version`
    subdir: str  # the package's folder inside the repository ("" = the root)
    version: str  # package.xml <version> that must be checked out
    # (file in the package, old text, new text): source edits applied to the copy pip installs; each old text
    # must occur exactly once in the pinned sources (else setup stops: the upstream changed)
    patches: tuple[tuple[str, str, str], ...] = ()


PACKAGES: tuple[RosPackage, ...] = (
    RosPackage("vision_msgs", "cmake", "ros_interfaces/vision_msgs",
               "https://github.com/ros-perception/vision_msgs.git", ("e77fa2d", "4.1.1"), "ros2",
               "vision_msgs", "4.1.1"),
    RosPackage("hri_msgs", "cmake", "ros_interfaces/hri_msgs",
               "https://github.com/ros4hri/hri_msgs.git", ("2.0.0",), "humble-devel", "", "2.0.0"),
    # /tf's message type (head poses as face_<id> / gaze_<id> frames); geometry2 tags its releases
    RosPackage("tf2_msgs", "cmake", "ros_interfaces/tf2_msgs",
               "https://github.com/ros2/geometry2.git", ("646342c", "0.36.4"), "jazzy", "tf2_msgs", "0.36.4"),
    RosPackage("composition_interfaces", "cmake", "ros_launch/composition_interfaces",
               "https://github.com/ros2/rcl_interfaces.git", ("003987e", "2.0.2"), "jazzy",
               "composition_interfaces", "2.0.2"),
    RosPackage("launch", "pip", "ros_launch/launch",
               "https://github.com/ros2/launch.git", ("09403fc", "3.4.3"), "jazzy", "launch", "3.4.3"),
    RosPackage("launch_ros", "pip", "ros_launch/launch_ros",
               "https://github.com/ros2/launch_ros.git", ("62c56e5", "0.26.6"), "jazzy", "launch_ros",
               "0.26.6"),
    # The real `ros2` command line (ros2cli 0.32.2, ros2launch 0.26.6, launch_xml/yaml 3.4.3, rosidl_runtime_py
    # 0.13.1; pure Python, ../shared/ros_cli): the README's commands are run as written by the tests. Their PyPI
    # deps (argcomplete, psutil, pyyaml, packaging) are pinned in requirements-common.txt.
    RosPackage("rosidl_runtime_py", "pip", "ros_cli/rosidl_runtime_py",
               "https://github.com/ros2/rosidl_runtime_py.git", ("df2361f", "0.13.1"), "jazzy", "", "0.13.1"),
    RosPackage("ros2cli", "pip", "ros_cli/ros2cli", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2cli", "0.32.2"),
    RosPackage("ros2pkg", "pip", "ros_cli/ros2pkg", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2pkg", "0.32.2"),
    RosPackage("ros2node", "pip", "ros_cli/ros2node", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2node", "0.32.2"),
    RosPackage("ros2topic", "pip", "ros_cli/ros2topic", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2topic", "0.32.2"),
    RosPackage("ros2param", "pip", "ros_cli/ros2param", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2param", "0.32.2"),
    RosPackage("ros2lifecycle", "pip", "ros_cli/ros2lifecycle", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2lifecycle", "0.32.2"),
    RosPackage("ros2service", "pip", "ros_cli/ros2service", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2service", "0.32.2"),
    RosPackage("ros2run", "pip", "ros_cli/ros2run", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2run", "0.32.2"),
    RosPackage("ros2interface", "pip", "ros_cli/ros2interface", "https://github.com/ros2/ros2cli.git", ("de6cd27", "0.32.2"), "jazzy",
               "ros2interface", "0.32.2"),
    RosPackage("launch_xml", "pip", "ros_cli/launch_xml",
               "https://github.com/ros2/launch.git", ("09403fc", "3.4.3"), "jazzy", "launch_xml", "3.4.3"),
    RosPackage("launch_yaml", "pip", "ros_cli/launch_yaml",
               "https://github.com/ros2/launch.git", ("09403fc", "3.4.3"), "jazzy", "launch_yaml", "3.4.3"),
    RosPackage("ros2launch", "pip", "ros_cli/ros2launch",
               "https://github.com/ros2/launch_ros.git", ("62c56e5", "0.26.6"), "jazzy", "ros2launch", "0.26.6"),
    # cryptography >= 42 wants a curve instance where sros2 0.13.0 passes the class: keystore creation fails
    RosPackage("sros2", "pip", "ros_security/sros2",
               "https://github.com/ros2/sros2.git", ("e349fcf", "0.13.0"), "jazzy", "sros2", "0.13.0",
               patches=(("sros2/_utilities.py", "ec.generate_private_key(ec.SECP256R1,",
                         "ec.generate_private_key(ec.SECP256R1(),"),)),
)


class SetupError(RuntimeError):
    """A setup step failed; the message says which and where the log is."""


def log(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, log_file: Path | None = None,
        cwd: Path | None = None) -> None:
    """Run a command; with log_file, its output goes there and its tail is shown on failure."""
    if log_file is None:
        subprocess.run(cmd, env=env, cwd=cwd, check=True)
        return
    with open(log_file, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines(True)[-40:])
        raise SetupError(f"{' '.join(cmd[:3])} ... failed (exit {rc}); log: {log_file}\n{tail}")


# ---------------------------------------------------------------- sources


def package_xml_version(pkg_dir: Path) -> str:
    match = re.search(r"<version>\s*([^<\s]+)\s*</version>", (pkg_dir / "package.xml").read_text())
    return match.group(1) if match else ""


def git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def fetch_upstream(pkg: RosPackage, cache: Path, repo_url: str | None = None) -> Path:
    """Clone the package's upstream repository at the pinned release into cache/ (once) and return its folder.

    Tries the pinned commit, then the release tag, then the commit on the release branch that set
    package.xml to the pinned version (release commits are tagged upstream, but a mirror may lack tags).
    """
    repo_dir = cache / f"{pkg.name}-{pkg.version}"
    pkg_dir = repo_dir / pkg.subdir if pkg.subdir else repo_dir
    if (pkg_dir / "package.xml").is_file() and package_xml_version(pkg_dir) == pkg.version:
        return pkg_dir
    if shutil.which("git") is None:
        raise SetupError(f"{pkg.name}: no ../shared sources and no git to fetch {pkg.repo_url}")
    shutil.rmtree(repo_dir, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    url = repo_url or pkg.repo_url
    log(f"{pkg.name}: cloning {url} ({pkg.version})")
    clone = subprocess.run(["git", "clone", "-q", "--filter=blob:none", "--no-checkout", url, str(repo_dir)],
                           capture_output=True, text=True)
    if clone.returncode != 0:
        raise SetupError(f"{pkg.name}: git clone {url} failed: {clone.stderr.strip()}")
    checked_out = any(git(["checkout", "-q", "--detach", ref], repo_dir).returncode == 0 for ref in pkg.refs)
    if not checked_out:
        xml = f"{pkg.subdir}/package.xml" if pkg.subdir else "package.xml"
        found = git(["log", "--format=%H", f"-S<version>{pkg.version}</version>", f"origin/{pkg.branch}",
                     "--", xml], repo_dir)
        commits = found.stdout.split()
        if found.returncode != 0 or not commits:
            raise SetupError(f"{pkg.name}: none of {pkg.refs} nor a {pkg.version} release on {pkg.branch} "
                             f"in {url}")
        # -S lists commits that added or removed the string: the oldest one is the release commit.
        if git(["checkout", "-q", "--detach", commits[-1]], repo_dir).returncode != 0:
            raise SetupError(f"{pkg.name}: git checkout {commits[-1]} failed in {repo_dir}")
    got = package_xml_version(pkg_dir) if (pkg_dir / "package.xml").is_file() else "no package.xml"
    if got != pkg.version:
        raise SetupError(f"{pkg.name}: {url} checked out version {got}, expected {pkg.version}")
    return pkg_dir


def source_dir(pkg: RosPackage, shared: Path | None, cache: Path) -> Path:
    """../shared copy where there is one, else the pinned upstream release."""
    if shared is not None and (shared / pkg.shared_dir / "package.xml").is_file():
        return shared / pkg.shared_dir
    return fetch_upstream(pkg, cache)


def tree_digest(root: Path) -> str:
    """sha256 over the relative paths and contents of the source files (build outputs never live there)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------- venv facts


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def ros_wheels_digest(venv: Path) -> str:
    """Names of the installed ros-* wheels with versions: a reinstall of the toolchain forces a rebuild."""
    names = sorted(p.name for p in site_packages(venv).glob("ros_*.dist-info"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def importable_outside(name: str, venv: Path) -> str | None:
    """Where `name` is importable from other than the venv (apt ROS on a robot), else None."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin).resolve()
    return None if venv.resolve() in origin.parents else str(origin)


def installed(pkg: RosPackage, venv: Path) -> bool:
    init = site_packages(venv) / pkg.name / "__init__.py"
    if pkg.kind == "cmake":
        return init.is_file() and (venv / "share" / pkg.name / "package.xml").is_file()
    if pkg.patches:  # the ament index entry it looks itself up by, and the patched lines in the installed copy
        marker = venv / "share" / "ament_index" / "resource_index" / "packages" / pkg.name
        return init.is_file() and marker.is_file() and all(
            (site_packages(venv) / rel).is_file() and new in (site_packages(venv) / rel).read_text(encoding="utf-8")
            for rel, _old, new in pkg.patches)
    return init.is_file()


# ---------------------------------------------------------------- the cmake-path fix


def fix_exported_cmake_paths(venv: Path) -> int:
    """Point the ros wheels' exported generator_py cmake files at this venv's Python and numpy headers.

    The wheels hard-code their builder's `/opt/python/cp311-cp311/include/python3.11` and
    `.../numpy/_core/include`; the generated Python extensions of any package that depends on them
    (vision_msgs -> std_msgs, ...) then fail to compile. Idempotent; returns how many files changed.
    """
    import numpy

    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    patterns = (
        (re.compile(r"/opt/python/[^;\"]*?/include/python3\.\d+"), py_include),
        (re.compile(r"/opt/python/[^;\"]*?/site-packages/numpy/(?:_core|core)/include"), np_include),
    )
    changed = 0
    for path in sorted((venv / "share").glob("*/cmake/export_*__rosidl_generator_pyExport.cmake")):
        text = path.read_text(encoding="utf-8")
        new = text
        for pattern, replacement in patterns:
            new = pattern.sub(replacement.replace("\\", "/"), new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


# ---------------------------------------------------------------- install steps


def build_cmake(pkg: RosPackage, src: Path, venv: Path, build_root: Path, log_file: Path) -> None:
    """Configure, build and install one rosidl interface package into the venv prefix (DESIGN.md recipe)."""
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    build = build_root / pkg.name
    run(["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={venv}",
         f"-DPython3_EXECUTABLE={venv / 'bin' / 'python3'}", "-DBUILD_TESTING=OFF"], env=env, log_file=log_file)
    run(["cmake", "--build", str(build), "-j", JOBS], env=env, log_file=log_file)
    run(["cmake", "--install", str(build)], env=env, log_file=log_file)


def apply_patches(pkg: RosPackage, copy: Path) -> None:
    """Edit the temporary copy as ``pkg.patches`` say; an old text that is absent or not unique stops setup."""
    for rel, old, new in pkg.patches:
        path = copy / rel
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if text.count(old) != 1:
            raise SetupError(f"{pkg.name}: cannot patch {rel}: {old!r} occurs {text.count(old)} times (expected 1) "
                             f"in the {pkg.version} sources")
        path.write_text(text.replace(old, new), encoding="utf-8")


def install_pip(pkgs: list[tuple[RosPackage, Path]], venv: Path, log_file: Path) -> None:
    """pip-install pure Python packages from temporary copies (pip builds in the source tree; ../shared stays
    untouched), each with its patches applied, in one pip call (one resolver start: ~3 s instead of ~3 s each)."""
    with tempfile.TemporaryDirectory(prefix="edge_infer_ros_pip_") as tmp:
        copies = []
        for pkg, src in pkgs:
            copy = Path(tmp) / pkg.name
            shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info"))
            for path in copy.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)  # ../shared is read-only; pip writes egg-info here
            apply_patches(pkg, copy)
            copies.append(str(copy))
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             *copies], log_file=log_file)


class Stale(SetupError):
    """--check: a package would be (re)installed."""


def stamp_key(pkg: RosPackage, src: Path, venv: Path) -> str:
    """What a package's installed copy depends on: recipe, sources, the ros wheels (and its patches)."""
    key = "\n".join([RECIPE_VERSION, pkg.kind, str(src.resolve()), tree_digest(src), ros_wheels_digest(venv)])
    if pkg.patches:  # only packages with patches: the other stamps (and builds) stay valid
        key += "\npatches " + hashlib.sha256(repr(pkg.patches).encode()).hexdigest()
    return key


def ensure_all(wanted: list[RosPackage], *, venv: Path, build_root: Path, shared: Path | None, stamps: Path,
               check_only: bool = False) -> None:
    """Install each package unless its stamp says it is current: cmake packages one by one, in order, then the
    stale pure Python ones in one pip call (they depend on the interface packages only at run time)."""
    pending: list[tuple[RosPackage, Path, str]] = []
    for pkg in wanted:
        outside = importable_outside(pkg.name, venv)
        if outside:
            log(f"{pkg.name}: found outside the venv ({outside}), not built")
            continue
        src = source_dir(pkg, shared, build_root / "src")
        key = stamp_key(pkg, src, venv)
        stamp = stamps / f"{pkg.name}.stamp"
        if stamp.is_file() and stamp.read_text() == key and installed(pkg, venv):
            log(f"{pkg.name}: up to date")
            continue
        if check_only:
            raise Stale(f"{pkg.name}: not installed or stale in {venv} (sources {src})")
        if pkg.kind == "pip":
            pending.append((pkg, src, key))
            continue
        log_file = build_root / "logs" / f"{pkg.name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("")
        start = time.monotonic()
        build_cmake(pkg, src, venv, build_root, log_file)
        finish(pkg, venv, stamp, key)
        log(f"{pkg.name}: installed from {src} in {time.monotonic() - start:.0f} s (log: {log_file})")
    if pending:
        log_file = build_root / "logs" / "pip_packages.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("")
        start = time.monotonic()
        install_pip([(pkg, src) for pkg, src, _key in pending], venv, log_file)
        for pkg, _src, key in pending:
            finish(pkg, venv, stamps / f"{pkg.name}.stamp", key)
        log(f"{', '.join(pkg.name for pkg, _s, _k in pending)}: installed in {time.monotonic() - start:.0f} s "
            f"(log: {log_file})")


def finish(pkg: RosPackage, venv: Path, stamp: Path, key: str) -> None:
    """Check the install landed, then write its stamp (a failed install leaves no stamp: retried next run)."""
    if not installed(pkg, venv):
        raise SetupError(f"{pkg.name}: installed without error but {site_packages(venv) / pkg.name} is missing")
    stamp.write_text(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix),
                        help="venv to install into (default: the one running this script)")
    parser.add_argument("--build-dir", type=Path, required=True, help="cmake build trees, logs, fetched sources")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                        help="folder with ros_interfaces/, ros_launch/ and ros_security/ (default: ../shared)")
    parser.add_argument("--only", nargs="*", help="package names (default: all)")
    parser.add_argument("--check", action="store_true", help="build nothing; exit 1 if a package is stale")
    args = parser.parse_args(argv)
    venv = args.venv.absolute()
    if Path(sys.prefix).resolve() != venv.resolve():
        parser.error(f"run this script with the venv's python: {venv}/bin/python {sys.argv[0]}")
    build_root = args.build_dir.absolute()
    stamps = venv / ".edge_infer_ros"
    stamps.mkdir(exist_ok=True)
    shared = args.shared if args.shared.is_dir() else None
    if shared is None:
        log(f"no {args.shared}: sources come from upstream git at the pinned releases")
    wanted = [p for p in PACKAGES if not args.only or p.name in args.only]
    if any(p.kind == "cmake" for p in wanted) and not args.check:
        missing = [tool for tool in ("cmake", "make", "cc", "c++") if shutil.which(tool) is None]
        if missing:
            raise SetupError(f"missing build tools {missing}: apt-get install cmake make gcc g++")
        fixed = fix_exported_cmake_paths(venv)
        if fixed:
            log(f"pointed {fixed} exported cmake files at this venv's Python and numpy headers")
    try:
        ensure_all(wanted, venv=venv, build_root=build_root, shared=shared, stamps=stamps, check_only=args.check)
    except SetupError as err:
        print(f"[setup] ERROR {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
