"""What one `edge-infer ui` server is configured with, and where its files live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge_infer.paths import PACKAGE, default_models_dir

DEFAULT_MAX_UPLOAD_MB = 512


def default_jobs_dir() -> Path:
    """Per-user data folder (jobs are results people come back to, not a cache that may vanish)."""
    try:
        from platformdirs import user_data_dir

        return Path(user_data_dir(PACKAGE)) / "web" / "jobs"
    except ImportError:  # minimal robot images: the XDG convention by hand
        return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / PACKAGE / "web" / "jobs"


@dataclass(frozen=True)
class WebSettings:
    """One server's settings. ``token`` None means no token (allowed on a loopback host only)."""

    jobs_dir: Path
    models_dir: Path
    token: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20
    max_parallel: int = 1
    root_path: str = ""

    @property
    def uploads_dir(self) -> Path:
        """Uploads live beside the job folders (job ids never equal 'uploads')."""
        return self.jobs_dir / "uploads"

    @classmethod
    def create(cls, jobs_dir: str | os.PathLike[str] | None = None, models_dir: str | os.PathLike[str] | None = None,
               **kwargs) -> "WebSettings":
        jobs = Path(jobs_dir).expanduser() if jobs_dir else default_jobs_dir()
        models = Path(models_dir).expanduser() if models_dir else default_models_dir()
        return cls(jobs_dir=jobs, models_dir=models, **kwargs)
