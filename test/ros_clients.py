"""Test helpers: talk to a node the way `ros2 lifecycle` and `ros2 param` do, through its real services,
from another node (which must be spinning, e.g. in edge_infer.ros.runner.spinning)."""

from __future__ import annotations

import time
from typing import Any, Callable

TRANSITIONS = ("configure", "activate", "deactivate", "cleanup", "shutdown")


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(step)
    return bool(cond())


def _client(client_node, srv_type, name: str, timeout: float):
    """One client per node and service, kept: a new client's first response can be lost while its response
    reader is still being matched (seen with Fast DDS on Jazzy), so each service is discovered once."""
    clients = client_node.__dict__.setdefault("_test_service_clients", {})
    if name not in clients:
        cli = client_node.create_client(srv_type, name)
        assert cli.wait_for_service(timeout_sec=timeout), f"service {name} did not appear"
        time.sleep(0.2)  # the response direction matches a little after the request direction
        clients[name] = cli
    return clients[name]


def call(client_node, srv_type, name: str, request, timeout: float = 30.0, idempotent: bool = False):
    """One service call from ``client_node``; the response (fails the test on a timeout). ``idempotent``
    requests (queries) are sent again when an answer is late, the others only once."""
    cli = _client(client_node, srv_type, name, timeout)
    deadline = time.monotonic() + timeout
    while True:
        future = cli.call_async(request)
        attempt = min(5.0, timeout) if idempotent else timeout
        if wait_for(future.done, max(0.1, min(attempt, deadline - time.monotonic()))):
            return future.result()
        future.cancel()
        assert idempotent and time.monotonic() < deadline, f"no answer from {name} within {timeout} s"


def get_state(client_node, node_name: str, timeout: float = 30.0) -> str:
    """`ros2 lifecycle get <node>`: the primary state's label."""
    from lifecycle_msgs.srv import GetState

    return call(client_node, GetState, f"{node_name}/get_state", GetState.Request(), timeout,
                idempotent=True).current_state.label


def change_state(client_node, node_name: str, transition: str, timeout: float = 60.0) -> bool:
    """`ros2 lifecycle set <node> <transition>`: whether the node accepted and completed it."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
           "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
           "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
    request = ChangeState.Request()
    request.transition.id = ids[transition]
    if transition == "shutdown":  # the label picks the right shutdown transition from any primary state
        request.transition.label = "shutdown"
    return call(client_node, ChangeState, f"{node_name}/change_state", request, timeout).success


def set_parameters(client_node, node_name: str, values: dict[str, Any], timeout: float = 30.0) -> list:
    """`ros2 param set` (atomically, several at once): the SetParametersResult of the request."""
    from rcl_interfaces.srv import SetParametersAtomically
    from rclpy.parameter import Parameter

    request = SetParametersAtomically.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return call(client_node, SetParametersAtomically, f"{node_name}/set_parameters_atomically", request,
                timeout).result


def set_parameter(client_node, node_name: str, name: str, value: Any, timeout: float = 30.0):
    """`ros2 param set <node> <name> <value>`: the SetParametersResult."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call(client_node, SetParameters, f"{node_name}/set_parameters", request, timeout).results[0]


def get_parameters(client_node, node_name: str, names: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """`ros2 param get`: name -> Python value."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    response = call(client_node, GetParameters, f"{node_name}/get_parameters", GetParameters.Request(names=names),
                    timeout, idempotent=True)
    return {n: parameter_value_to_python(v) for n, v in zip(names, response.values)}
