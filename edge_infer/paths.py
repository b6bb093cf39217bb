"""Where things live: installed share files (config/, launch/) and the models directory.

The same code runs from a source checkout, a pip install (here) and a colcon install (robot), so config
files are looked up in that order of specificity rather than assumed next to the code.
"""

from __future__ import annotations

from edge_infer.errors import MissingFileError
import os
import sys
from pathlib import Path

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
