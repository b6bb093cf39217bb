"""`ros2 launch edge_infer pipeline.launch.py [camera_topic:=...] [cameras:=[head,left]] [audio_topic:=...] [backend:=...]
[models_dir:=...] [enable_face:=true|false] [enable_audio:=true|false] [namespace:=...]
[dds_profile:=large_data|none|PATH] [autostart:=true|false] [enclave:=/edge_infer]`

Thin over :mod:`edge_infer.launch_description` (which nodes, executables, parameter files from config/,
remappings, launch arguments); ``edge-infer run`` starts the same description in one process.
The nodes are lifecycle nodes that configure and activate themselves at start-up (parameter ``autostart``);
with ``autostart:=false`` they wait unconfigured for ``ros2 lifecycle set /face_pipeline configure`` (or a
lifecycle manager). They are started as plain launch_ros ``Node`` actions on purpose: a ``LifecycleNode``
action puts an rclpy node into the launch process, and on Jazzy that process then aborted ("terminate called
without an active exception") in 7 of 10 runs when a second Ctrl-C arrived during shutdown (0 of 20 with
``Node``; see README "Lifecycle nodes"). Valid for launch_ros on ROS 2 Humble and newer.

``enclave:=<root>`` (SROS2) puts each node process in its own enclave, ``--ros-args --enclave <root>/<node
name>`` (``/edge_infer/face_pipeline``, ``/edge_infer/audio_node``), so each gets only its own permissions
(``config/sros2/edge_infer.policy.xml``); security itself is switched on by the environment
(``ROS_SECURITY_ENABLE=true``, ``ROS_SECURITY_STRATEGY=Enforce``, ``ROS_SECURITY_KEYSTORE``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from edge_infer import launch_description as desc


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in desc.LAUNCH_ARGUMENTS}
    actions = []
    env = desc.node_environment(values)  # the DDS profile for large images (the camera driver needs it too)
    for n in desc.resolve(values):
        d = n.description
        # A params file keyed `face_pipeline:` only matches the node in the root namespace (rcl matches the fully
        # qualified name), so the same YAML values are also passed as a dict (`/**`): they apply under the
        # `namespace` argument and under an including launch file's PushRosNamespace alike.
        parameters = [str(n.params_file), desc.load_node_parameters(d, n.params_file)]
        if n.overrides:
            parameters.append(n.overrides)
        actions.append(Node(
            package=desc.PACKAGE,
            executable=d.executable,
            name=d.name,
            namespace=n.namespace,  # '' = the root (or an including launch file's PushRosNamespace)
            parameters=parameters,
            remappings=n.remappings,
            ros_arguments=n.ros_arguments or None,  # --enclave <root>/<node name> with the enclave argument
            additional_env=env,
            output="screen",
            emulate_tty=True,
            condition=IfCondition(LaunchConfiguration(d.enable_argument)),
        ))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
         for a in desc.LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=_nodes)]
    )
