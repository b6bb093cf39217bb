"""What the pipeline launch starts, as plain data (no launch / launch_ros / rclpy imports).

One description, three users:
- ``launch/pipeline.launch.py`` turns it into launch_ros ``Node`` actions (``ros2 launch edge_infer
  pipeline.launch.py``, robots with a ROS distribution);
- ``edge-infer run`` (:mod:`edge_infer.ros.one_process`) runs the same nodes in one process with one
  single-threaded executor, on purpose (see ``edge_infer.ros.runner.make_executor``: rclpy's multi-threaded
  executor measured 10-30x slower delivery of camera frames), where ``ros2 launch`` is not available;
- tests check it without launch_ros being installed.

Launch arguments (``name:=value`` on the ``ros2 launch`` command line, ``--name`` for ``edge-infer run``):

========================  ============  ==========================================================
argument                  default       meaning
========================  ============  ==========================================================
``camera_topic``          ``image``     topic the face node's ``image`` input is remapped to
``audio_topic``           ``audio``     topic the audio node's ``audio`` input is remapped to
``backend``               ``""``        inference runtime override (``""`` = keep the YAML value)
``models_dir``            ``""``        models directory override (``""`` = keep the YAML value)
``enable_face``           ``true``      start the face pipeline node
``enable_audio``          ``true``      start the audio node
``namespace``             ``""``        namespace of both nodes
``autostart``             ``""``        ``false``: the (lifecycle) nodes wait unconfigured for ``ros2 lifecycle set``
                                        or a launch ChangeState event (``""`` = the YAML value, true)
``dds_profile``           ``large_data`` Fast DDS profile of the node processes: ``large_data`` = the shipped
                                        ``config/fastdds_large_data.xml`` (unless FASTDDS_/FASTRTPS_DEFAULT_
                                        PROFILES_FILE is already set), a path, or ``none``
========================  ============  ==========================================================
"""

from __future__ import annotations

from edge_infer.errors import ConfigError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PACKAGE = "edge_infer"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


@dataclass(frozen=True)
class NodeDescription:
    """One node of the pipeline: how ``ros2 launch`` and ``edge-infer run`` start it."""

    key: str                       # short name used by enable_<key> and --only
    executable: str                # console_scripts entry in setup.py (lib/edge_infer/<executable>)
    name: str                      # ROS node name (= the top-level key of its YAML file)
    module: str                    # Python module holding the node class (for the one-process runner)
    class_name: str                # rclpy Node subclass in ``module``
    params_file: str               # file name under config/
    input_topic: str               # the node's relative input topic, remapped from the launch argument
    topic_argument: str            # launch argument holding the remap target
    extra_remaps: tuple[tuple[str, str], ...] = ()  # (from, suffix): from -> <topic argument><suffix>
    overrides: tuple[str, ...] = ("backend", "models_dir", "autostart")  # launch args passed as parameters when non-empty

    @property
    def enable_argument(self) -> str:
        return f"enable_{self.key}"


LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("camera_topic", "image", "Camera image topic (sensor_msgs/Image) for the face pipeline."),
    LaunchArgument("audio_topic", "audio", "Audio chunk topic for the audio node."),
    LaunchArgument("backend", "", "Inference backend override: onnxruntime | tensorrt | torch | auto ('' = YAML)."),
    LaunchArgument("models_dir", "", "Models directory override ('' = YAML, then $EDGE_INFER_MODELS / user cache)."),
    LaunchArgument("enable_face", "true", "Start face_pipeline_node."),
    LaunchArgument("enable_audio", "true", "Start audio_node."),
    LaunchArgument("namespace", "", "Namespace for both nodes."),
    LaunchArgument("autostart", "", "Bring the lifecycle nodes to active at start-up: true | false ('' = YAML, "
                   "true); false: they wait unconfigured for `ros2 lifecycle set <node> configure`."),
    LaunchArgument("dds_profile", "large_data", "Fast DDS profile for the nodes: large_data (config/"
                   "fastdds_large_data.xml, 64 MiB shared memory for large images; kept if FASTDDS_DEFAULT_PROFILES_FILE "
                   "is set), a path to an XML file, or none."),
)

DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"  # Fast DDS 3.x (Kilted and newer)
# Fast DDS 2.x (Humble, Jazzy) reads only the old name: measured on Jazzy, the new one alone changes nothing
DDS_PROFILE_ENVS = (DDS_PROFILE_ENV, "FASTRTPS_DEFAULT_PROFILES_FILE")
LARGE_DATA_PROFILE = "fastdds_large_data.xml"

NODES: tuple[NodeDescription, ...] = (
    NodeDescription(key="face", executable="face_pipeline_node", name="face_pipeline",
                    module="edge_infer.ros.face_node", class_name="FacePipelineNode",
                    params_file="face_pipeline.yaml", input_topic="image", topic_argument="camera_topic",
                    extra_remaps=(("image/compressed", "/compressed"),)),
    NodeDescription(key="audio", executable="audio_node", name="audio_node",
                    module="edge_infer.ros.audio_node", class_name="AudioNode",
                    params_file="audio.yaml", input_topic="audio", topic_argument="audio_topic"),
)


def argument_defaults() -> dict[str, str]:
    return {a.name: a.default for a in LAUNCH_ARGUMENTS}


def is_true(value: str | bool) -> bool:
    """launch's IfCondition semantics: 'true'/'1' (any case) are true, 'false'/'0' false, else an error."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ConfigError(f"expected true/false, got {value!r}")


_FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_env_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The variable(s) this machine's Fast DDS reads: 2.x (Humble, Jazzy) the FASTRTPS_ name, 3.x (Kilted and
    newer) the FASTDDS_ one (3.x warns that the old name is deprecated). Unknown: both."""
    import os

    env = os.environ if environ is None else environ
    distro = env.get("ROS_DISTRO", "").lower()
    if distro:
        return (DDS_PROFILE_ENVS[1],) if distro in _FAST_DDS_2_DISTROS else (DDS_PROFILE_ENV,)
    from importlib import metadata

    for dist, names in (("ros-fastdds", (DDS_PROFILE_ENV,)), ("ros-fastrtps", (DDS_PROFILE_ENVS[1],))):
        try:
            metadata.version(dist)  # the PyPI ROS wheels (dev machines, CI)
            return names
        except metadata.PackageNotFoundError:
            continue
    return DDS_PROFILE_ENVS


def node_environment(arguments: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables the node processes get: the Fast DDS profile chosen by ``dds_profile``."""
    import os

    env = os.environ if environ is None else environ
    value = str(arguments.get("dds_profile", "large_data")).strip()
    if value in ("", "none"):
        return {}
    if value == "large_data":
        if any(env.get(k) for k in DDS_PROFILE_ENVS):
            return {}  # the user's (or the robot's) own profile wins
        from edge_infer.paths import config_file

        return dict.fromkeys(profile_env_names(env), str(config_file(LARGE_DATA_PROFILE)))
    path = Path(value).expanduser()
    if not path.is_file():
        from edge_infer.errors import MissingFileError

        raise MissingFileError(f"dds_profile {value}: no such file (use large_data, none or a path to a Fast DDS XML)")
    return dict.fromkeys(profile_env_names(env), str(path))


def remappings(node: NodeDescription, arguments: Mapping[str, str]) -> list[tuple[str, str]]:
    """Remaps for ``node`` given resolved launch argument values."""
    target = arguments[node.topic_argument]
    out = [(node.input_topic, target)]
    out += [(src, target + suffix) for src, suffix in node.extra_remaps]
    return [(a, b) for a, b in out if a != b]


#: launch arguments (strings) whose parameter is not a string: the typed value, so rclpy accepts the override
_OVERRIDE_TYPES = {"autostart": is_true}


def parameter_overrides(node: NodeDescription, arguments: Mapping[str, str]) -> dict[str, Any]:
    """Launch arguments that override YAML parameters (only the non-empty ones), typed as the parameter."""
    return {k: _OVERRIDE_TYPES.get(k, str)(arguments[k]) for k in node.overrides if arguments.get(k, "") != ""}


def params_path(node: NodeDescription, config_dir: Path | None = None) -> Path:
    """The node's parameter file (installed share/config, a source checkout, or $EDGE_INFER_CONFIG_DIR)."""
    if config_dir is not None:
        return Path(config_dir) / node.params_file
    from edge_infer.paths import config_file

    return config_file(node.params_file)


def load_node_parameters(node: NodeDescription, path: Path) -> dict[str, Any]:
    """The node's ``ros__parameters`` from a ROS 2 params file, nested keys flattened with dots.

    Sections match like rcl does for the common forms: ``/**``, ``name``, ``/name``, ``/**/name`` and
    ``/<ns>/name``; later (more specific) sections win.
    """
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, Any] = {}
    for key in ("/**", "**"):
        out.update(_flatten(doc.get(key, {}).get("ros__parameters", {})))
    for key, section in doc.items():
        k = str(key)
        if k.rsplit("/", 1)[-1] == node.name and isinstance(section, dict):
            out.update(_flatten(section.get("ros__parameters", {}) or {}))
    return out


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


@dataclass
class ResolvedNode:
    """A node after the launch arguments are applied: what gets started."""

    description: NodeDescription
    namespace: str
    params_file: Path
    overrides: dict[str, Any]
    remappings: list[tuple[str, str]]
    enabled: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = self.description
        return {"package": PACKAGE, "executable": d.executable, "name": d.name, "namespace": self.namespace,
                "module": d.module, "class": d.class_name, "parameters": [str(self.params_file), self.overrides],
                "remappings": self.remappings, "enabled": self.enabled}


def resolve(arguments: Mapping[str, str] | None = None, config_dir: Path | None = None) -> list[ResolvedNode]:
    """All nodes with the launch arguments applied (unknown argument names are an error)."""
    args = argument_defaults()
    unknown = set(arguments or {}) - set(args)
    if unknown:
        raise ConfigError(f"unknown launch arguments {sorted(unknown)}; known: {sorted(args)}")
    args.update({k: str(v) for k, v in (arguments or {}).items()})
    return [ResolvedNode(description=n, namespace=args["namespace"], params_file=params_path(n, config_dir),
                         overrides=parameter_overrides(n, args), remappings=remappings(n, args),
                         enabled=is_true(args[n.enable_argument])) for n in NODES]
