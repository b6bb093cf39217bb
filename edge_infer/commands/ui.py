"""`edge-infer ui`: the web page and REST API (edge_infer/web) served by uvicorn.

Binds 127.0.0.1 unless --host is given; any other host needs a token ($EDGE_INFER_UI_TOKEN or --token-file),
checked on every API call. On a robot prefer an SSH tunnel: `ssh -L 8080:127.0.0.1:8080 robot`.
"""

from __future__ import annotations

import argparse

from edge_infer.commands import add_models_dir, models_dir
from edge_infer.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from edge_infer.web.settings import DEFAULT_MAX_UPLOAD_MB, default_jobs_dir

    p = sub.add_parser("ui", help="web page + REST API for the model tools and the running nodes (needs [ui] extras)",
                       description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--root-path", default="", help="sub-path when served behind a reverse proxy, e.g. /edge")
    p.add_argument("--token-file", help="file holding the access token (chmod 600); or set $EDGE_INFER_UI_TOKEN")
    p.add_argument("--jobs-dir", help=f"job folders and uploads (default {default_jobs_dir()})")
    p.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload accepted, MiB (default {DEFAULT_MAX_UPLOAD_MB})")
    p.add_argument("--max-parallel", type=int, default=1, help="jobs running at once; more wait in a queue (default 1)")
    add_models_dir(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge_infer.web.security import TOKEN_ENV, is_loopback, read_token
    from edge_infer.web.settings import WebSettings

    token = read_token(args.token_file)
    if token is None and not is_loopback(args.host):
        raise ConfigError(f"--host {args.host} is reachable from other machines: set ${TOKEN_ENV} or --token-file "
                          "(or use an SSH tunnel to 127.0.0.1)")
    if args.max_upload_mb < 1 or args.max_parallel < 1:
        raise ConfigError("--max-upload-mb and --max-parallel must be at least 1")
    if args.root_path and (not args.root_path.startswith("/") or args.root_path.endswith("/")):
        raise ConfigError("--root-path is like /edge (a leading '/', no trailing '/')")
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the web UI needs its extras: pip install 'edge_infer[ui]' (fastapi, uvicorn, "
                          "python-multipart)") from None
    from edge_infer.web.app import create_app

    settings = WebSettings.create(args.jobs_dir, models_dir(args), token=token,
                                  max_upload_bytes=args.max_upload_mb << 20, max_parallel=args.max_parallel,
                                  root_path=args.root_path)
    app = create_app(settings)
    print(f"edge-infer ui: http://{args.host}:{args.port}{args.root_path}/  (jobs in {settings.jobs_dir}"
          + (", token required" if token else "") + ")", flush=True)
    # root_path stays with the app (web.app.RootPath): uvicorn's would refuse paths a proxy did not strip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False, server_header=False)
    return 0
