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
``camera_topic``          ``image``     topic the face node's ``image`` input is remapped to (``camera_info``: its sibling)
``cameras``               ``""``        the face node's cameras, e.g. ``[head,left,right]`` (``""`` = the YAML value,
                                        one camera on ``camera_topic``); each named camera reads ``<name>/image``
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
``enclave``               ``""``        SROS2 enclave root (``""`` = none): each node process gets
                                        ``--ros-args --enclave <root>/<node name>`` (``/edge_infer/face_pipeline``,
                                        ``/edge_infer/audio_node``); ``edge-infer run`` (both nodes, one process,
                                        one DDS participant) gets ``<root>/pipeline``. Permissions for exactly these
                                        enclaves: ``config/sros2/edge_infer.policy.xml``
========================  ============  ==========================================================

The YAML parameter files are read here (:func:`load_node_parameters`) and may come from anywhere
(``--config-dir``): a file that is not a mapping of node sections, a section or ``ros__parameters`` that is not a
mapping, a value that is not a ROS parameter (scalar or flat list of one type), or a file too large or too
deep is a :class:`~edge_infer.errors.ConfigError` naming the file and the key, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge_infer.errors import ConfigError, MissingFileError
from edge_infer.fileio import read_yaml

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
    # (from, name): from -> <the topic argument's namespace>/<name>, image_transport's rule for camera_info
    # (/cam/image_raw -> /cam/camera_info)
    sibling_remaps: tuple[tuple[str, str], ...] = ()
    overrides: tuple[str, ...] = ("backend", "models_dir", "autostart")  # launch args passed as parameters when non-empty

    @property
    def enable_argument(self) -> str:
        return f"enable_{self.key}"


LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("camera_topic", "image", "Camera image topic (sensor_msgs/Image) for the face pipeline."),
    LaunchArgument("cameras", "", "The face node's cameras, e.g. [head,left,right]: one node, one copy of the models, "
                   "inputs <name>/image and <name>/camera_info, outputs ~/<name>/detections... ('' = YAML: one "
                   "camera on camera_topic)."),
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
    LaunchArgument("enclave", "", "SROS2 enclave root ('' = none), e.g. /edge_infer: each node runs in the enclave "
                   "<root>/<node name> (/edge_infer/face_pipeline, /edge_infer/audio_node; `edge-infer run`: "
                   "<root>/pipeline). Takes effect with ROS_SECURITY_ENABLE=true and ROS_SECURITY_KEYSTORE; "
                   "permissions from config/sros2/edge_infer.policy.xml."),
)

DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"  # Fast DDS 3.x (Kilted and newer)
# Fast DDS 2.x (Humble, Jazzy) reads only the old name: measured on Jazzy, the new one alone changes nothing
DDS_PROFILE_ENVS = (DDS_PROFILE_ENV, "FASTRTPS_DEFAULT_PROFILES_FILE")
LARGE_DATA_PROFILE = "fastdds_large_data.xml"

NODES: tuple[NodeDescription, ...] = (
    NodeDescription(key="face", executable="face_pipeline_node", name="face_pipeline",
                    module="edge_infer.ros.face_node", class_name="FacePipelineNode",
                    params_file="face_pipeline.yaml", input_topic="image", topic_argument="camera_topic",
                    extra_remaps=(("image/compressed", "/compressed"),),
                    sibling_remaps=(("camera_info", "camera_info"),),
                    overrides=("backend", "models_dir", "autostart", "cameras")),
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


#: the enclave (under the ``enclave`` root) of ``edge-infer run``: both nodes in one process share one DDS
#: participant, so one enclave whose permissions are the union of the two nodes' profiles
ONE_PROCESS_ENCLAVE = "pipeline"
#: the shipped SROS2 policy (config/sros2/): one enclave per node process + the one-process enclave
POLICY_FILE = "sros2/edge_infer.policy.xml"
_ENCLAVE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def enclave_root(value: str) -> str:
    """The ``enclave`` argument checked as rcl checks an enclave name: ``''`` (no enclave) or absolute, tokens of
    letters, digits and ``_`` not starting with a digit, no empty token. Checked here so a typo is one line at
    start-up rather than an rcl error inside each node process."""
    value = str(value).strip()
    if value in ("", "/"):
        return value
    tokens = value.split("/")
    if not value.startswith("/") or not all(_ENCLAVE_TOKEN.match(t) for t in tokens[1:]):
        raise ConfigError(f"enclave {value!r}: expected an absolute enclave name like /edge_infer (letters, digits "
                          "and _ between slashes, no trailing slash), or '' for none")
    return value


def enclave_name(root: str, leaf: str) -> str:
    """``<root>/<leaf>`` (``''`` when there is no root): the enclave a process runs in."""
    root = enclave_root(root)
    if not root:
        return ""
    return f"{root.rstrip('/')}/{leaf}"


def enclave_ros_arguments(enclave: str) -> list[str]:
    """The ``--ros-args`` part that puts a process in ``enclave`` (nothing for ``''``)."""
    return ["--enclave", enclave] if enclave else []


def remappings(node: NodeDescription, arguments: Mapping[str, str]) -> list[tuple[str, str]]:
    """Remaps for ``node`` given resolved launch argument values."""
    target = arguments[node.topic_argument]
    out = [(node.input_topic, target)]
    out += [(src, target + suffix) for src, suffix in node.extra_remaps]
    namespace = target.rpartition("/")[0]
    out += [(src, f"{namespace}/{name}" if "/" in target else name) for src, name in node.sibling_remaps]
    return [(a, b) for a, b in out if a != b]


def camera_list(value: str) -> list[str]:
    """``[head,left]``, ``head,left`` or ``['head', 'left']`` -> ['head', 'left'] (the node checks the names and
    refuses bad ones with the reason)."""
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip().strip("'\"") for part in text.split(",")]


#: launch arguments (strings) whose parameter is not a string: the typed value, so rclpy accepts the override
_OVERRIDE_TYPES = {"autostart": is_true, "cameras": camera_list}


def parameter_overrides(node: NodeDescription, arguments: Mapping[str, str]) -> dict[str, Any]:
    """Launch arguments that override YAML parameters (only the non-empty ones), typed as the parameter."""
    return {k: _OVERRIDE_TYPES.get(k, str)(arguments[k]) for k in node.overrides if arguments.get(k, "") != ""}


def params_path(node: NodeDescription, config_dir: Path | None = None) -> Path:
    """The node's parameter file (installed share/config, a source checkout, or $EDGE_INFER_CONFIG_DIR)."""
    if config_dir is not None:
        return Path(config_dir) / node.params_file
    from edge_infer.paths import config_file

    return config_file(node.params_file)


#: bounds for a parameter file, which may come from anywhere (``--config-dir``): ours are ~3 KB and ~40 values
MAX_PARAMS_FILE_BYTES = 1 << 20
MAX_PARAMETERS = 10_000
MAX_PARAMETER_DEPTH = 32


def load_node_parameters(node: NodeDescription, path: Path) -> dict[str, Any]:
    """The node's ``ros__parameters`` from a ROS 2 params file, nested keys flattened with dots.

    Sections match like rcl does for the common forms: ``/**``, ``name``, ``/name``, ``/**/name`` and
    ``/<ns>/name``; later (more specific) sections win. The file is not trusted: anything that is not a params
    file of ROS parameter values is a ConfigError naming the file and the key (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"parameter file not found: {path} (node {node.name}; --config-dir names the folder "
                               f"holding {node.params_file})")
    doc = read_yaml(path, str(path), MAX_PARAMS_FILE_BYTES, ConfigError,
                    "MAX_PARAMS_FILE_BYTES in edge_infer.launch_description")
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: a ROS 2 parameter file is a mapping of node names to sections "
                          f"({node.name}: {{ros__parameters: {{...}}}}), got {_kind(doc)}")
    out: dict[str, Any] = {}
    sections = [(k, doc[k]) for k in ("/**", "**") if k in doc]
    sections += [(k, v) for k, v in doc.items() if str(k) not in ("/**", "**") and
                 str(k).rsplit("/", 1)[-1] == node.name]
    for key, section in sections:
        where = f"{path}: {key}"
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: the node section must be a mapping with ros__parameters, got {_kind(section)}")
        params = section.get("ros__parameters")
        if params is None:
            continue
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}.ros__parameters: must be a mapping of parameter names to values, "
                              f"got {_kind(params)}")
        out.update(_flatten(params, f"{where}.ros__parameters"))
    return out


def _kind(value: Any) -> str:
    """How a YAML value is named in an error (the value itself may be huge)."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    return {list: "a list", dict: "a mapping", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__)


_SCALARS = (bool, int, float, str)


def _parameter_value(value: Any, where: str) -> Any:
    """``value`` if rcl and rclpy take it as a parameter: a scalar or a flat list of one type (both refuse a list
    that mixes types, even ints with floats; an empty list is allowed)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        kinds = {type(v) for v in value}
        if len(kinds) <= 1:
            return value
        raise ConfigError(f"{where}: a list parameter must hold values of one type, got "
                          f"{sorted(k.__name__ for k in kinds)}")
    raise ConfigError(f"{where}: {_kind(value)} is not a ROS parameter value (a number, string, boolean or a "
                      "flat list of one of them)")


def _size(value: Any) -> int:
    """What a value costs once rclpy copies it (characters and list items), for the budget in _flatten."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return len(value) + sum(len(v) for v in value if isinstance(v, str))
    return 1


def _flatten(d: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """Nested mappings -> dotted names, bounded: at most ``MAX_PARAMETERS`` values, ``MAX_PARAMETER_DEPTH``
    levels and ``MAX_PARAMS_FILE_BYTES`` characters + list items in all. YAML aliases let a 1 KB file name the
    same mapping, list or string a million times; the bounds stop that early instead of copying it into rclpy."""
    out: dict[str, Any] = {}
    budget = [MAX_PARAMS_FILE_BYTES]

    def walk(m: Mapping[Any, Any], prefix: str, depth: int) -> None:
        if depth > MAX_PARAMETER_DEPTH:
            raise ConfigError(f"{where}: parameters nested more than {MAX_PARAMETER_DEPTH} levels deep")
        for k, v in m.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                walk(v, name + ".", depth + 1)
                continue
            if len(out) >= MAX_PARAMETERS and name not in out:
                raise ConfigError(f"{where}: more than {MAX_PARAMETERS} parameters")
            out[name] = _parameter_value(v, f"{where}.{name}")
            budget[0] -= _size(v)
            if budget[0] < 0:
                raise ConfigError(f"{where}: the values add up to more than {MAX_PARAMS_FILE_BYTES} characters "
                                  "and list items (YAML aliases repeating a large value?)")

    walk(d, "", 0)
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
    enclave: str = ""  # SROS2 enclave of the node's own process ('' = none): <enclave root>/<node name>
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ros_arguments(self) -> list[str]:
        """Process-level ``--ros-args`` of the node's own process (``ros2 launch``): its enclave."""
        return enclave_ros_arguments(self.enclave)

    def as_dict(self) -> dict[str, Any]:
        d = self.description
        return {"package": PACKAGE, "executable": d.executable, "name": d.name, "namespace": self.namespace,
                "module": d.module, "class": d.class_name, "parameters": [str(self.params_file), self.overrides],
                "remappings": self.remappings, "ros_arguments": self.ros_arguments, "enabled": self.enabled}


def resolve(arguments: Mapping[str, str] | None = None, config_dir: Path | None = None) -> list[ResolvedNode]:
    """All nodes with the launch arguments applied (unknown argument names are an error)."""
    args = argument_defaults()
    unknown = set(arguments or {}) - set(args)
    if unknown:
        raise ConfigError(f"unknown launch arguments {sorted(unknown)}; known: {sorted(args)}")
    args.update({k: str(v) for k, v in (arguments or {}).items()})
    return [ResolvedNode(description=n, namespace=args["namespace"], params_file=params_path(n, config_dir),
                         overrides=parameter_overrides(n, args), remappings=remappings(n, args),
                         enabled=is_true(args[n.enable_argument]), enclave=enclave_name(args["enclave"], n.name))
            for n in NODES]


def one_process_ros_arguments(arguments: Mapping[str, str] | None = None) -> list[str]:
    """``--ros-args`` for ``edge-infer run``'s one process (one rclpy context, one DDS participant, so one
    enclave for both nodes): ``--enclave <root>/pipeline`` when the ``enclave`` argument is set."""
    root = (arguments or {}).get("enclave", "")
    return enclave_ros_arguments(enclave_name(root, ONE_PROCESS_ENCLAVE))
