"""package.xml as rosdep and colcon read it on a robot: `rosdep install --from-paths src --ignore-src` installs
what its keys name, so every key must exist and every dependency the code imports at run time must have one.

rosdep's database (ros/rosdistro: rosdep/*.yaml and <distro>/distribution.yaml) is not reachable here (no
network), so `rosdep resolve` cannot run. Instead:
- a ROS package key is checked against the ROS packages installed here (the venv's ament index: the ros wheels
  and the packages setup/ros_packages.py builds from their release sources), or against the small table below;
- every other key must be in KNOWN_ROSDEP_KEYS, each with where it was confirmed (the rosdistro file, read by hand);
- every third-party module the code imports must be in PYTHON_IMPORTS (its key, or None and why there is none), so
  a new import cannot slip in without a decision.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("edge_infer", "launch")
PYTHON_YAML = ("ros/rosdistro rosdep/python.yaml (revision with the 2025-04-30 and 2027-04-30 EOL migrations, "
               "read 2026-12-04 through the code index)")

#: rosdep keys that are not ROS packages, and where each was confirmed to exist
KNOWN_ROSDEP_KEYS: dict[str, str] = {
    "python3-numpy": PYTHON_YAML,
    "python3-opencv": PYTHON_YAML,
    "python3-yaml": PYTHON_YAML,
    "python3-scipy": PYTHON_YAML,
    "python3-tqdm": PYTHON_YAML,
    "python3-matplotlib": PYTHON_YAML,
    "python3-onnxruntime-pip": PYTHON_YAML + "; pip key (there is no python3-onnxruntime apt key)",
    "python3-setuptools": PYTHON_YAML,
    "python3-pytest": PYTHON_YAML,
}

#: ROS packages that package.xml names but that are not installed in the venvs (test-only linters)
RELEASED_ROS_PACKAGES: dict[str, str] = {
    "ament_copyright": "ament_lint repository, released for Jazzy and Kilted (nix-ros-overlay distros/kilted/"
                       "ament-copyright, generated from rosdistro)",
    "ament_flake8": "ament_lint repository, released for Jazzy and Kilted (nix-ros-overlay distros/jazzy/ament-flake8)",
}

#: keys that were wrong here before and must not come back
NOT_ROSDEP_KEYS: dict[str, str] = {
    "ament_python": "a build type, not a package: rosdep install fails on it (ros2/ros2_documentation#508)",
    "python3-platformdirs": "no such key in " + PYTHON_YAML + " (paths.py falls back to $XDG_CACHE_HOME)",
    "python3-onnxruntime": "no such key; the key is python3-onnxruntime-pip",
}

#: every third-party (non-ROS) top-level module imported under edge_infer/ and launch/: its rosdep key, or None
#: with the reason there is none (README "Robot installation" installs those with pip or they come with JetPack)
PYTHON_IMPORTS: dict[str, str | None] = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "scipy": "python3-scipy",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "onnxruntime": "python3-onnxruntime-pip",
}
NO_ROSDEP_KEY: dict[str, str] = {
    "platformdirs": "optional (edge_infer/paths.py falls back to $XDG_CACHE_HOME); no rosdep key",
    "orjson": "optional (face_results.py falls back to json); no rosdep key",
    "lz4": "bag reading of lz4-compressed MCAP only; no rosdep key",
    "rosbags": "pip only",
    "onnx": "pip only (offline tools)",
    "onnx_graphsurgeon": "pip only (offline tools)",
    "onnx2torch": "pip only (offline tools, workstation)",
    "polygraphy": "pip only (offline tools)",
    "tflite": "pip only (offline import, workstation)",
    "tflite2onnx": "pip only (offline import, workstation)",
    "ai_edge_litert": "pip only, optional backend (python3-... key does not exist)",
    "torch": "pip only (python3-pytorch-pip is end-of-life in rosdistro), workstation tools",
    "safetensors": "pip only (workstation tools)",
    "keras": "pip only (offline reference, workstation)",
    "h5py": "offline Keras import only (workstation)",
    "mediapipe": "the benchmark's peer, its own venv (requirements-bench.txt), never the product's",
    "psutil": "benchmarks only (edge-infer bench cameras: node RSS/CPU), pip; the nodes never import it "
              "(python3-psutil not confirmed in " + PYTHON_YAML + ")",
    "tensorrt": "comes with JetPack (python3-libnvinfer)",
    "pycuda": "comes with JetPack / pip, TensorRT backend only",
    "cuda": "cuda-python (pip install .[cuda12]), TensorRT backend only",
    # the web page + REST API (`edge-infer ui`): an optional extra (pip install .[ui]); the nodes never import it
    "fastapi": "optional extra [ui] (edge-infer ui), pip",
    "pydantic": "optional extra [ui] (edge-infer ui), pip",
    "python_multipart": "optional extra [ui] (edge-infer ui), pip",
    "uvicorn": "optional extra [ui] (edge-infer ui), pip",
    "starlette": "optional extra [ui] (edge-infer ui), pip",
}

#: what an import implies beyond its own package: rclpy.lifecycle nodes serve lifecycle_msgs services
IMPLIED_KEYS = {"rclpy.lifecycle": "lifecycle_msgs"}

#: ROS run-time keys the code does not import, and why package.xml names them anyway
ROS_KEYS_NOT_IMPORTED = {"sros2": "`ros2 security` for the shipped policy config/sros2/edge_infer.policy.xml"}


@pytest.fixture(scope="module")
def package():
    from catkin_pkg.package import parse_package

    warnings: list[str] = []
    pkg = parse_package(str(ROOT), warnings=warnings)
    pkg.validate(warnings=warnings)
    assert warnings == [], warnings
    return pkg


def _keys(deps) -> set[str]:
    return {d.name for d in deps}


def _ament_packages() -> set[str]:
    """ROS packages installed here: the ament index of this venv and of AMENT_PREFIX_PATH (a sourced robot)."""
    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    names: set[str] = set()
    for prefix in prefixes:
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages"
        if index.is_dir():
            names.update(p.name for p in index.iterdir())
    return names - {"edge_infer"}


def _imports() -> dict[str, set[str]]:
    """Dotted module names imported (absolutely) by the code -> the files importing them."""
    found: dict[str, set[str]] = {}
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_format_3_ament_python_and_valid_for_catkin_pkg(package):
    assert package.package_format == 3
    assert package.name == "edge_infer"
    assert package.get_build_type() == "ament_python"
    setup_py = (ROOT / "setup.py").read_text()
    assert re.search(r'version="%s"' % re.escape(package.version), setup_py), "setup.py and package.xml versions differ"


def test_every_key_exists(package):
    ros = _ament_packages()
    assert {"rclpy", "std_msgs", "sensor_msgs"} <= ros, f"no ROS packages found in {sys.prefix} (make ros-env)"
    all_keys = set()
    for deps in (package.buildtool_depends, package.build_depends, package.build_export_depends,
                 package.exec_depends, package.test_depends, package.doc_depends):
        all_keys |= _keys(deps)
    bad = {k: NOT_ROSDEP_KEYS[k] for k in all_keys & set(NOT_ROSDEP_KEYS)}
    assert not bad, bad
    known = ros | set(RELEASED_ROS_PACKAGES) | set(KNOWN_ROSDEP_KEYS)
    unknown = sorted(all_keys - known)
    assert not unknown, (f"{unknown}: neither a ROS package installed here nor a confirmed rosdep key; check "
                         "ros/rosdistro rosdep/python.yaml / base.yaml and add it to KNOWN_ROSDEP_KEYS with where")


def test_every_imported_ros_package_is_a_run_time_key(package):
    run_time = _keys(package.exec_depends)
    ros = _ament_packages()
    imports = _imports()
    needed: dict[str, set[str]] = {}
    for name, files in imports.items():
        top = name.split(".")[0]
        if top in ros:
            needed.setdefault(top, set()).update(files)
        for prefix, key in IMPLIED_KEYS.items():
            if name == prefix or name.startswith(prefix + "."):
                needed.setdefault(key, set()).update(files)
    assert {"rclpy", "sensor_msgs", "launch_ros", "lifecycle_msgs"} <= set(needed), sorted(needed)  # the scan works
    missing = {k: sorted(v)[:3] for k, v in needed.items() if k not in run_time}
    assert not missing, f"imported at run time but not an <exec_depend>/<depend> of package.xml: {missing}"
    ros_keys = {k for k in run_time if k in ros or k in RELEASED_ROS_PACKAGES}
    unused = sorted(ros_keys - set(needed) - set(ROS_KEYS_NOT_IMPORTED))
    assert not unused, f"ROS keys that nothing imports (remove, or say why in ROS_KEYS_NOT_IMPORTED): {unused}"


def test_every_third_party_import_has_a_decision_and_its_key(package):
    run_time = _keys(package.exec_depends)
    ros = _ament_packages()
    tops = {name.split(".")[0] for name in _imports()}
    third_party = {t for t in tops if t not in sys.stdlib_module_names and t not in ros and t != "edge_infer"}
    assert {"numpy", "cv2", "onnxruntime"} <= third_party, sorted(third_party)  # the scan works
    undecided = sorted(third_party - set(PYTHON_IMPORTS) - set(NO_ROSDEP_KEY))
    assert not undecided, (f"new imports {undecided}: add each to PYTHON_IMPORTS (its rosdep key, confirmed in "
                           "ros/rosdistro rosdep/python.yaml) or NO_ROSDEP_KEY (why none)")
    for module, key in PYTHON_IMPORTS.items():
        if module in third_party:
            assert key in KNOWN_ROSDEP_KEYS, (module, key)
            assert key in run_time, f"{module} is imported at run time: <exec_depend>{key}</exec_depend> is missing"
    python_keys = {k for k in run_time if k in KNOWN_ROSDEP_KEYS}
    used = {PYTHON_IMPORTS[m] for m in third_party if m in PYTHON_IMPORTS}
    assert python_keys <= used, f"package.xml names {sorted(python_keys - used)} but nothing imports them"


def test_build_dependency_of_setup_py(package):
    """setup.py imports setuptools: its key is a build tool dependency (what colcon runs setup.py with)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "setuptools" in imported
    assert "python3-setuptools" in _keys(package.buildtool_depends) | _keys(package.build_depends)
