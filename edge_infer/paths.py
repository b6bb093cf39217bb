"""Where things live: installed share files (config/, launch/) and the models directory.

The same code runs from a source checkout, a pip install (here) and a colcon install (robot), so config
files are looked up in that order of specificity rather than assumed next to the code.
"""

from __future__ import annotations

from edge_infer.errors import EdgeInferError, MissingFileError
import os
import sys
from pathlib import Path, PurePosixPath

PACKAGE = "edge_infer"
MODELS_ENV = "EDGE_INFER_MODELS"
CONFIG_ENV = "EDGE_INFER_CONFIG_DIR"


def _candidate_share_dirs() -> list[Path]:
    dirs: list[Path] = []
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "package.xml").is_file():  # source checkout / editable install: prefer live files
        dirs.append(source_root)
    try:  # colcon / apt install on a robot
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError, KeyError):  # OSError: AMENT_PREFIX_PATH unset (pip venv)
            pass
    except ImportError:
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)  # pip install (data_files)
    return dirs


def share_dir() -> Path:
    """The directory holding ``config/`` and ``launch/`` for this installation."""
    for d in _candidate_share_dirs():
        if (d / "config").is_dir():
            return d
    raise MissingFileError(
        f"cannot find the {PACKAGE} share directory (config/, launch/); looked in "
        f"{[str(d) for d in _candidate_share_dirs()]}. Reinstall the package or set {CONFIG_ENV}."
    )


def config_file(name: str) -> Path:
    """Path of ``config/<name>``; ``$EDGE_INFER_CONFIG_DIR`` overrides the installed copy."""
    override = os.environ.get(CONFIG_ENV)
    base = Path(override) if override else share_dir() / "config"
    path = base / name
    if not path.is_file():
        raise MissingFileError(f"config file not found: {path}")
    return path


def default_models_dir() -> Path:
    """``$EDGE_INFER_MODELS`` or the per-user cache (models are fetched, never committed)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir(PACKAGE)) / "models"
    except ImportError:  # minimal robot images: follow the XDG convention by hand
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / PACKAGE / "models"


# ------------------------------------------------------------------ paths named inside files (untrusted)
class OutsidePathError(EdgeInferError, ValueError):
    """A path written inside a file (zoo ``file:`` entry, bundle manifest, tar member, bag metadata) is absolute,
    climbs out with ``..``, or resolves (through a symlink) outside the folder it must stay in."""


def relative_name(relative: object, what: str) -> PurePosixPath:
    """``relative`` as a relative POSIX path that cannot climb out of any folder, else OutsidePathError.

    Why a check without a folder: a zoo file is read before anyone says which models folder it applies to,
    and its ``file:`` entries must be refused where the zoo file is read, not later where a file is opened.
    ``what`` names the file and the entry (e.g. ``zoo.yaml:models.x.file``): the message says where to look.
    """
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise OutsidePathError(f"{what}: {relative!r} is not a file name")
    path = PurePosixPath(relative)
    if path.is_absolute():
        raise OutsidePathError(f"{what}: '{relative}' is an absolute path; only names relative to its folder "
                               "are accepted")
    if ".." in path.parts:
        raise OutsidePathError(f"{what}: '{relative}' climbs out of its folder with '..'; only names inside "
                               "its folder are accepted")
    if path == PurePosixPath("."):
        raise OutsidePathError(f"{what}: '{relative}' names the folder itself, not a file in it")
    return path


def inside(base: str | os.PathLike[str], relative: object, what: str) -> Path:
    """``base / relative`` when it stays inside ``base`` after resolving symlinks, else OutsidePathError.

    For every path that comes from a file rather than from the user's command line: such a file may come
    from anywhere, and ``../../etc/passwd``, ``/etc/passwd`` or a symlink pointing out of the folder must not
    make a command read (or hash, or publish) something the user never named. The returned path is the
    unresolved join (as the user would write it); the check resolves both sides, so a folder that is itself a
    symlink is fine, and a file that does not exist yet is checked through its existing parents.
    """
    rel = relative_name(relative, what)
    root = Path(base).expanduser()
    real_root = root.resolve()
    real = (real_root / rel).resolve()
    if real_root not in real.parents:
        raise OutsidePathError(f"{what}: '{relative}' resolves to {real}, outside {real_root} (a symbolic link "
                               "out of the folder); only files inside the folder are accepted")
    return root / rel
