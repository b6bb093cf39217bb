"""Make a colcon-style install prefix for edge_infer so the real launch system finds its executables.

Why: launch_ros's `Node(package="edge_infer", executable="face_pipeline_node")` (what `ros2 launch` and
`ros2 run` do) resolves through the ament index: a prefix on AMENT_PREFIX_PATH holding
`share/ament_index/resource_index/packages/edge_infer` and the executables in `lib/edge_infer/`. The venv's
editable install has neither (pip ignores setup.cfg's script_dir), and a real `setup.py install` would copy
the code. This prefix links to the venv's console scripts and to the checkout's launch/ and config/ files, so
edits are live and a re-run is only needed when setup.py's entry points change.

Use it with `AMENT_PREFIX_PATH=<prefix>:<venv>` (the tests: the `ament_prefix` fixture in test/conftest.py).
The venv gets a pointer file `.edge_infer_ament_prefix` with the prefix's path.

Usage: <venv>/bin/python setup/ament_prefix.py --prefix build/kilted/ament_prefix
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.metadata import distribution
from pathlib import Path

PACKAGE = "edge_infer"
POINTER_FILE = ".edge_infer_ament_prefix"


def console_scripts(venv: Path) -> dict[str, Path]:
    """Every console script of the installed edge_infer distribution and its file in the venv's bin/."""
    scripts = {ep.name: venv / "bin" / ep.name
               for ep in distribution(PACKAGE).entry_points if ep.group == "console_scripts"}
    missing = sorted(name for name, path in scripts.items() if not path.is_file())
    if missing:
        raise SystemExit(f"[setup] console scripts missing in {venv}/bin: {missing} (pip install -e . first)")
    return scripts


# setup.py's data_files under share/edge_infer (the same globs; test_colcon_workspace.py compares the two trees)
SHARE_GLOBS = ("package.xml", "launch/*.py", "config/*.yaml", "config/*.xml", "config/sros2/*.xml")


def share_files(repo: Path) -> list[Path]:
    """The files setup.py installs into share/edge_infer, relative to the repository."""
    return sorted({path.relative_to(repo) for pattern in SHARE_GLOBS for path in repo.glob(pattern)})


def make_prefix(prefix: Path, repo: Path, venv: Path, pointer: bool = True) -> list[str]:
    """(Re)create the prefix (and with `pointer`, the venv's pointer file); returns the executable names."""
    scripts = console_scripts(venv)
    staging = prefix.with_name(prefix.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    index = staging / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    shutil.copyfile(repo / "resource" / PACKAGE, index / PACKAGE)
    share = staging / "share" / PACKAGE
    share.mkdir(parents=True)
    # One link per file in real folders, as `colcon build --symlink-install` makes them: ros2launch finds a launch
    # file by os.walk, which does not enter a linked folder.
    for rel in share_files(repo):
        (share / rel).parent.mkdir(parents=True, exist_ok=True)
        (share / rel).symlink_to(repo / rel)
    lib = staging / "lib" / PACKAGE
    lib.mkdir(parents=True)
    for name, path in sorted(scripts.items()):
        (lib / name).symlink_to(path)
    shutil.rmtree(prefix, ignore_errors=True)
    staging.rename(prefix)
    if pointer:
        (venv / POINTER_FILE).write_text(str(prefix) + "\n")
    return sorted(scripts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    venv = Path(sys.prefix).absolute()
    names = make_prefix(args.prefix.absolute(), args.repo.absolute(), venv)
    print(f"[setup] ament prefix {args.prefix}: {len(names)} executables in lib/{PACKAGE}, "
          f"launch/ and config/ files linked (AMENT_PREFIX_PATH={args.prefix.absolute()}:{venv})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
