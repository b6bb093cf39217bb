"""`ros2 launch edge_infer pipeline.launch.py [camera_topic:=...] [audio_topic:=...] [backend:=...]
[models_dir:=...] [enable_face:=true|false] [enable_audio:=true|false] [namespace:=...]
[dds_profile:=large_data|none|PATH]`

Thin over :mod:`edge_infer.launch_description` (which nodes, executables, parameter files from config/,
remappings, launch arguments); ``edge-infer run`` starts the same description in one process.
Valid for launch_ros on ROS 2 Humble and newer.
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
        parameters = [str(n.params_file)]
        if n.namespace:
            # A params file keyed `face_pipeline:` only matches the node in the root namespace (rcl matches the
            # fully qualified name), so under a namespace the same YAML values are passed as a dict (`/**`).
            parameters.append(desc.load_node_parameters(d, n.params_file))
        if n.overrides:
            parameters.append(n.overrides)
        actions.append(Node(
            package=desc.PACKAGE,
            executable=d.executable,
            name=d.name,
            namespace=n.namespace or None,
            parameters=parameters,
            remappings=n.remappings,
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
