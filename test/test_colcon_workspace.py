"""The way robot users install edge_infer: a colcon workspace with this repository in src/, `colcon build`,
`source install/setup.bash`, then the real `ros2` tools (`ros2 pkg`, `ros2 launch`, `ros2 node list`), on Kilted
and Jazzy (`ros` mark).

The workspace is built from a copy of the working tree's tracked and untracked-but-not-ignored files (what a
clone of this branch holds, uncommitted work included; no venvs, no build/). colcon runs from the venv, so the
venv's python builds and runs the package, as apt's colcon does with the system python on a robot. The
environment is a robot's after `source /opt/ros/<distro>/setup.bash` with the venv as /opt/ros/<distro>:
PATH=<venv>/bin and AMENT_PREFIX_PATH=<venv> (where the ros wheels' ament index lives) and nothing of the
project's own prefix tooling (no build/<distro>/ament_prefix, no EDGE_INFER_* but the models folder).

Found while writing this: the venv's editable `pip install -e .` of edge_infer does NOT shadow the workspace.
setuptools' editable finder is appended to sys.meta_path, after the PathFinder that reads PYTHONPATH, and
install/setup.bash puts install/edge_infer/lib/python3.X/site-packages on PYTHONPATH, so the install wins; the
tests below prove it for the running node processes, and show that without the workspace the same python
imports the checkout.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ros2_cli import pid_alive, pid_environ

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
PACKAGE = "edge_infer"
#: files colcon itself writes into share/<package> (environment hooks), not setup.py's data_files
COLCON_OWN = re.compile(r"(hook/.*|package\.(bash|dsv|sh|ps1|zsh))\Z")
#: what a robot needs in share/edge_infer whatever the globs say
REQUIRED_SHARE = ("package.xml", "launch/pipeline.launch.py", "config/face_pipeline.yaml", "config/audio.yaml",
                  "config/models.yaml", "config/fastdds_large_data.xml", "config/sros2/edge_infer.policy.xml")
NODES = {"face_pipeline_node": ("face_pipeline", "face_pipeline.yaml", "edge_infer.ros.face_node"),
         "audio_node": ("audio_node", "audio.yaml", "edge_infer.ros.audio_node")}


# ------------------------------------------------------------------------------------------------ helpers
def _console_scripts() -> set[str]:
    """The console_scripts names in setup.py (read from its source, independent of any install)."""
    import ast

    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(e).split("=")[0].strip() for e in value.elts}
    raise AssertionError("no console_scripts in setup.py")


def _ament_prefix_module():
    """setup/ament_prefix.py (the dev prefix that mimics colcon): its SHARE_GLOBS / share_files()."""
    spec = importlib.util.spec_from_file_location("edge_infer_setup_ament_prefix", ROOT / "setup" / "ament_prefix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout_files() -> list[str]:
    """Tracked + untracked-not-ignored files of the working tree (a `git clone` would miss uncommitted work)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: the workspace copy is made from `git ls-files`")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (ROOT / p).is_file()})


def _robot_env(models_dir: Path) -> dict[str, str]:
    """A shell on a robot after `source /opt/ros/<distro>/setup.bash`, with this venv as /opt/ros/<distro>."""
    keep = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "RMW_IMPLEMENTATION",
            "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")  # the test session's isolation
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=os.pathsep.join([str(VENV / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
               AMENT_PREFIX_PATH=str(VENV), EDGE_INFER_MODELS=str(models_dir), PYTHONUNBUFFERED="1")
    return env


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    build_s: float = 0.0
    build_output: str = ""

    @property
    def install(self) -> Path:
        return self.root / "install" / PACKAGE

    @property
    def share(self) -> Path:
        return self.install / "share" / PACKAGE

    @property
    def src(self) -> Path:
        return self.root / "src" / PACKAGE

    def site_packages(self) -> Path:
        return self.install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def sourced(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`command` in bash after `source install/setup.bash` (the user's shell in the workspace)."""
        return subprocess.run(["bash", "-c", f"source install/setup.bash && {command}"], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def share_tree(self) -> tuple[set[str], set[str]]:
        """(setup.py's files, colcon's own files) under share/edge_infer, as relative paths."""
        files = {p.relative_to(self.share).as_posix() for p in self.share.rglob("*") if p.is_file() or p.is_symlink()}
        own = {f for f in files if COLCON_OWN.match(f)}
        return files - own, own


def _build_workspace(root: Path, models_dir: Path, *colcon_args: str) -> Workspace:
    ws = Workspace(root=root, env=_robot_env(models_dir))
    for rel in _checkout_files():
        (ws.src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, ws.src / rel)
    t0 = time.monotonic()
    proc = subprocess.run([str(VENV / "bin" / "colcon"), "build", *colcon_args], cwd=root, env=ws.env,
                          capture_output=True, text=True, timeout=300)
    ws.build_s = time.monotonic() - t0
    ws.build_output = proc.stdout + proc.stderr
    assert proc.returncode == 0, ws.build_output
    assert f"Finished <<< {PACKAGE}" in proc.stdout, ws.build_output
    # nothing for a robot user to wonder about; colcon's note that the venv (standing in for /opt/ros/<distro>)
    # has no local_setup.* files is the one warning that belongs to this setup, not to the package
    warnings = [line for line in ws.build_output.splitlines() if re.search(r"warn", line, re.I)
                and "doesn't contain any 'local_setup.*' files" not in line]
    assert not warnings, ws.build_output
    print(f"\ncolcon build {' '.join(colcon_args)}: {ws.build_s:.1f} s", file=sys.stderr)
    return ws


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, models_dir) -> Workspace:
    """One `colcon build` per module (a copy install, what the README's robot installation does)."""
    return _build_workspace(tmp_path_factory.mktemp("colcon_ws"), models_dir)


#: printed by a python started in a sourced shell: where edge_infer and the launch file resolve from
RESOLVE = r"""
import importlib.util, json, sys
import edge_infer.paths
from ros2launch.api import get_share_file_path_from_package
print(json.dumps({
    "edge_infer": importlib.util.find_spec("edge_infer").origin,
    "face_node": importlib.util.find_spec("edge_infer.ros.face_node").origin,
    "share_dir": str(edge_infer.paths.share_dir()),
    "launch_file": get_share_file_path_from_package(package_name="edge_infer", file_name="pipeline.launch.py"),
    "sys_path": sys.path,
}))
"""


# ------------------------------------------------------------------------------------------------ build + install
def test_colcon_installs_what_setup_py_declares(workspace):
    """share/edge_infer holds setup.py's data files (= the dev prefix's SHARE_GLOBS), the index marker and one
    executable per console script, run by the python colcon built with."""
    ament_prefix = _ament_prefix_module()
    installed, own = workspace.share_tree()
    assert "package.dsv" in own, own  # colcon's own environment hooks, left out of the comparison
    expected = {p.as_posix() for p in ament_prefix.share_files(ROOT)}
    assert installed == expected, (f"colcon installed {sorted(installed - expected)} beyond the dev prefix's "
                                   f"SHARE_GLOBS and not {sorted(expected - installed)}")
    # the same from setup.py's own record of what it installed (build/edge_infer/install.log)
    record = (workspace.root / "build" / PACKAGE / "install.log").read_text().split()
    recorded = {Path(p).relative_to(workspace.share).as_posix() for p in record if p.startswith(f"{workspace.share}/")}
    assert recorded == expected
    for rel in REQUIRED_SHARE:
        assert rel in installed, rel
        assert filecmp.cmp(workspace.share / rel, ROOT / rel, shallow=False), f"{rel} differs from the checkout"
    marker = workspace.install / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file() and str(marker) in record, "resource/edge_infer marker not installed by setup.py"

    lib = workspace.install / "lib" / PACKAGE
    assert {p.name for p in lib.iterdir()} == _console_scripts()
    for exe in NODES:
        shebang = (lib / exe).read_text().splitlines()[0]
        assert shebang.startswith("#!") and Path(shebang[2:].strip()).parent == VENV / "bin", shebang
    assert (workspace.site_packages() / PACKAGE / "ros" / "face_node.py").is_file()
    assert not list(workspace.site_packages().glob("test*")), "the test folder must not be installed as a package"


def test_sourced_workspace_is_what_ros2_and_python_find(workspace):
    """`ros2 pkg prefix|executables` and python's imports resolve into install/, and only after sourcing it."""
    bare = subprocess.run(["ros2", "pkg", "prefix", PACKAGE], cwd=workspace.root, env=workspace.env,
                          capture_output=True, text=True, timeout=120)
    assert bare.returncode != 0 and "not found" in (bare.stdout + bare.stderr).lower(), \
        f"edge_infer is found without the workspace: the environment helps ({bare.stdout}{bare.stderr})"
    unsourced = subprocess.run(["python", "-c", "import edge_infer; print(edge_infer.__file__)"], cwd=workspace.root,
                               env=workspace.env, capture_output=True, text=True, timeout=120)
    assert Path(unsourced.stdout.strip()) == ROOT / PACKAGE / "__init__.py", unsourced  # the editable install

    env = workspace.sourced('echo "$AMENT_PREFIX_PATH"; echo "$PYTHONPATH"')
    assert env.returncode == 0, env.stderr
    ament_prefix_path, pythonpath = env.stdout.splitlines()[:2]
    assert ament_prefix_path.split(os.pathsep) == [str(workspace.install), str(VENV)]
    assert "ament_prefix" not in ament_prefix_path  # nothing of build/<distro>/ament_prefix
    assert pythonpath.split(os.pathsep)[0] == str(workspace.site_packages())

    prefix = workspace.sourced(f"ros2 pkg prefix {PACKAGE}")
    assert prefix.returncode == 0 and Path(prefix.stdout.strip()) == workspace.install, prefix
    executables = workspace.sourced(f"ros2 pkg executables {PACKAGE}")
    assert executables.returncode == 0, executables.stderr
    assert set(executables.stdout.splitlines()) == {f"{PACKAGE} {name}" for name in _console_scripts()}

    resolved = workspace.sourced(f"python -c '{RESOLVE}'")
    assert resolved.returncode == 0, resolved.stderr
    found = json.loads(resolved.stdout)
    site = workspace.site_packages()
    assert Path(found["edge_infer"]) == site / PACKAGE / "__init__.py", found
    assert Path(found["face_node"]) == site / PACKAGE / "ros" / "face_node.py", found
    assert Path(found["share_dir"]) == workspace.share, found  # config/ of the install, not of a checkout
    assert Path(found["launch_file"]) == workspace.share / "launch" / "pipeline.launch.py", found


# ------------------------------------------------------------------------------------------------ ros2 launch
@dataclass
class Launch:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def pids(self) -> dict[str, int]:
        return {m.group(1): int(m.group(2)) for m in re.finditer(
            r"\[INFO\] \[(\w+)-\d+\]: process started with pid \[(\d+)\]", self.output)}

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.5)  # the reader may still hold the last lines
                return bool(re.search(pattern, self.output))
            time.sleep(0.2)
        return False






def _proc_argv(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().rstrip("\0").split("\0")


@pytest.fixture(scope="module")
def launched(workspace):
    """`ros2 launch edge_infer pipeline.launch.py` (defaults) in the sourced workspace, both nodes active."""
    command = f"source install/setup.bash && exec ros2 launch {PACKAGE} pipeline.launch.py"
    proc = subprocess.Popen(["bash", "-c", command],
                            cwd=workspace.root, env=workspace.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    run = Launch(proc)
    run.reader = threading.Thread(target=run.read, daemon=True)
    run.reader.start()
    try:
        for node in ("face_pipeline", "audio_node"):
            assert run.wait_for(rf"\[{node}\]: active\b", timeout=180), f"{node} did not become active:\n{run.output}"
        assert set(run.pids()) == set(NODES), run.output
        yield run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in run.pids().values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_launch_runs_the_installed_executables_with_the_installed_files(workspace, launched):
    """Each node process: the executable in install/lib, the params file and DDS profile from install/share, and
    edge_infer imported from install/ (the node's own interpreter, environment and sys.path[0] asked again)."""
    from edge_infer.launch_description import DDS_PROFILE_ENVS, profile_env_names

    config = workspace.share / "config"
    for exe, pid in launched.pids().items():
        _, params_file, module = NODES[exe]
        argv = _proc_argv(pid)
        script = workspace.install / "lib" / PACKAGE / exe
        assert Path(argv[0]).parent == VENV / "bin" and Path(argv[1]) == script, argv
        assert Path(argv[argv.index("--params-file") + 1]) == config / params_file, argv

        environ = pid_environ(pid)
        profiles = {k: environ[k] for k in DDS_PROFILE_ENVS if k in environ}  # the name(s) this Fast DDS reads
        assert profiles == dict.fromkeys(profile_env_names(workspace.env), str(config / "fastdds_large_data.xml")), \
            (exe, profiles)
        assert environ["AMENT_PREFIX_PATH"].split(os.pathsep) == [str(workspace.install), str(VENV)], exe

        probe = (f"import sys, importlib.util; sys.path[0] = {str(script.parent)!r}; "
                 f"print(importlib.util.find_spec({module!r}).origin)")
        origin = subprocess.run([argv[0], "-c", probe], env=environ, cwd=os.readlink(f"/proc/{pid}/cwd"),
                                capture_output=True, text=True, timeout=120)
        assert origin.returncode == 0, origin.stderr
        assert Path(origin.stdout.strip()) == workspace.site_packages() / Path(*module.split(".")).with_suffix(".py"), \
            (exe, origin.stdout)


def test_ros2_node_list_shows_both_nodes(workspace, launched):
    names: set[str] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not {"/face_pipeline", "/audio_node"} <= names:
        listed = workspace.sourced("ros2 node list --no-daemon --spin-time 3")
        names = set(listed.stdout.split())
    assert {"/face_pipeline", "/audio_node"} <= names, (names, launched.output)


def test_one_sigint_stops_the_launch_and_both_nodes(launched):
    """Ctrl-C in the terminal (SIGINT to the foreground process group) stops everything cleanly."""
    pids = launched.pids()
    os.killpg(launched.proc.pid, signal.SIGINT)
    launched.proc.wait(timeout=60)
    launched.reader.join(timeout=10)
    for exe, pid in pids.items():
        assert f"process has finished cleanly [pid {pid}]" in launched.output, launched.output
        assert not pid_alive(pid), f"{exe} (pid {pid}) still running"
    assert launched.proc.returncode == 0, launched.output
    for bad in ("Traceback", "has died", "SIGKILL"):
        assert bad not in launched.output, launched.output


# ------------------------------------------------------------------------------------------------ --symlink-install
def test_symlink_install_links_the_same_files_and_launches(tmp_path_factory, models_dir):
    """`colcon build --symlink-install` (the developer's workspace): the same share files, as links into src/, the
    same executables, `ros2 launch` finds the launch file through them, and edge_infer is the live src/ code."""
    ws = _build_workspace(tmp_path_factory.mktemp("colcon_ws_symlink"), models_dir, "--symlink-install")
    installed, _ = ws.share_tree()
    assert installed == {p.as_posix() for p in _ament_prefix_module().share_files(ROOT)}
    for rel in installed:
        path = ws.share / rel
        assert path.is_symlink() and path.resolve() == (ws.src / rel).resolve(), rel
    assert not (ws.share / "launch").is_symlink(), "a linked folder hides the launch file from ros2 launch's os.walk"

    executables = ws.sourced(f"ros2 pkg executables {PACKAGE}")
    assert set(executables.stdout.splitlines()) == {f"{PACKAGE} {name}" for name in _console_scripts()}, executables
    show = ws.sourced(f"ros2 launch --show-args {PACKAGE} pipeline.launch.py")
    assert show.returncode == 0, show.stderr
    from edge_infer.launch_description import LAUNCH_ARGUMENTS

    assert re.findall(r"^    '(\w+)':", show.stdout, re.M) == [a.name for a in LAUNCH_ARGUMENTS], show.stdout
    resolved = ws.sourced(f"python -c '{RESOLVE}'")
    assert resolved.returncode == 0, resolved.stderr
    found = json.loads(resolved.stdout)
    assert Path(found["edge_infer"]).resolve() == (ws.src / PACKAGE / "__init__.py").resolve(), found
    assert Path(found["launch_file"]) == ws.share / "launch" / "pipeline.launch.py", found
