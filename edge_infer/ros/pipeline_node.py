"""The lifecycle and live-parameter plumbing shared by face_pipeline_node and audio_node.

Why lifecycle nodes (rclpy ``LifecycleNode``, Humble and newer): a robot brings perception up and down with
its task, as yolo_ros and ROS4HRI's face nodes allow. Here:

- ``configure`` loads the models (and builds or loads TensorRT engines);
- ``activate`` subscribes to the input and lets results out (lifecycle publishers);
- ``deactivate`` unsubscribes and stops all inference: no CPU/GPU time is spent while inactive;
- ``cleanup`` releases the models (backends closed: engines, buffers, CUDA contexts freed);
- ``shutdown`` works from every state; ``/diagnostics`` keeps reporting in every state (message: the state).

``autostart`` (read-only, default true) configures and activates during construction, so the console
scripts, ``edge-infer run``, the launch file and code that builds a node come up active; with ``autostart``
false the node waits unconfigured for ``ros2 lifecycle set <node> configure`` (or a launch ChangeState event).
A node that cannot configure during autostart raises the real error from its constructor (the console
script prints it and exits); configured through the service it stays unconfigured and logs the error.

Parameters that are not read-only are live (:class:`edge_infer.ros.params.LiveParameters`): subclasses
apply a change from the next frame/chunk in :meth:`PipelineNode._apply_live`.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger

from edge_infer.backends import close_backends
from edge_infer.backends.memory import runtime_diagnostics
from edge_infer.errors import EdgeInferError
from edge_infer.pipeline.stream_health import ERROR, OK
from edge_infer.ros.diagnostics import status_array
from edge_infer.ros.output_publisher import output_publisher
from edge_infer.ros.param_table import Param
from edge_infer.ros.params import LiveParameters

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class NodeStartError(EdgeInferError):
    """A lifecycle transition of the autostart failed without an exception of its own."""


class PipelineNode(LifecycleNode):
    """Base of the pipeline nodes. Subclasses set ``DIAGNOSTICS_NAME`` and implement the hooks below.

    Every teardown step tolerates a partly built node (class-level defaults), so ``destroy_node`` is safe
    from any point of construction: a failed start shows its own error only.
    """

    DIAGNOSTICS_NAME = "pipeline"
    pipeline: Any = None  # the loaded models (configured states only)
    inputs: tuple = ()  # input subscriptions (active state only)
    active = False
    finalized = False
    live: LiveParameters | None = None
    _configure_error: BaseException | None = None
    _autostarting = False

    def __init__(self, node_name: str, params: tuple[Param, ...], **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            self._guard_change_state()
            self.live = LiveParameters(self, params, self._apply_live)
            self._use(self.live.values)
            self.diag_pub = output_publisher(self, DiagnosticArray, "/diagnostics", 10)
            self.create_service(Trigger, "~/rebuild_engines", self._rebuild_engines)
            self._setup(self.live.values)
            self.create_timer(self.live.values["diagnostics_period_s"], self._publish_diagnostics)
            if self.live.values["autostart"]:
                self._autostart()
            else:  # a node that waits must say so, or it looks hung to whoever started it
                self.get_logger().info(f"unconfigured (autostart: false): waiting for `ros2 lifecycle set "
                                       f"{self.get_fully_qualified_name()} configure`, then activate")
        except BaseException:
            self.destroy_node()
            raise

    @property
    def values(self) -> dict[str, Any]:
        """The parameter values in effect now."""
        return self.live.values

    # ----------------------------------------------------------------------------------- subclass hooks
    def _setup(self, values: dict[str, Any]) -> None:
        """Publishers and other entities that live as long as the node (no models)."""

    def _use(self, values: dict[str, Any]) -> None:
        """Take the node-side settings (not the pipeline's) from ``values``: at start and on every live change."""

    def _load(self, **overrides: Any) -> Any:
        """The pipeline with its models loaded, from the current values (configure, engine rebuild)."""
        raise NotImplementedError

    def _subscribe(self) -> tuple:
        """The input subscriptions (activate)."""
        return ()

    def _start_work(self) -> None:
        """Start processing (activate), after the subscriptions exist."""

    def _stop_work(self) -> None:
        """Stop processing (deactivate, shutdown), after the subscriptions are gone: no inference afterwards."""

    def _swap_pipeline(self, new: Any) -> Any:
        """Put ``new`` in place between two frames/chunks; returns the old pipeline (closed by the caller)."""
        old, self.pipeline = self.pipeline, new
        return old

    def _apply_live(self, values: dict[str, Any], changed: set[str]) -> None:
        """Apply a live parameter change from the next frame/chunk (raise ConfigError to refuse it)."""
        self._use(values)

    def _backend_names(self) -> dict[str, str]:
        """model -> runtime name of the loaded pipeline."""
        raise NotImplementedError

    def _active_diagnostics(self) -> DiagnosticArray:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- lifecycle
    def _guard_change_state(self) -> None:
        """Answer ``success: false`` to a transition the current state does not have.

        rclpy 7 (Jazzy) raises RCLError from its ~/change_state callback instead (rclpy 9 answers false):
        the exception escaped into the executor and stopped the node, e.g. on `ros2 lifecycle set <node>
        activate` while unconfigured.
        """
        service = getattr(self, "_service_change_state", None)
        if service is None:
            return
        original = service.callback

        def change_state(request, response):
            try:
                return original(request, response)
            except _rclpy.RCLError as e:
                self.get_logger().warning(f"transition {request.transition.id} {request.transition.label!r} "
                                          f"refused in state {self.lifecycle_state}: {e}")
                response.success = False
                return response

        service.callback = change_state

    def _autostart(self) -> None:
        """configure + activate now; raise the real error if either fails."""
        self._autostarting = True
        try:
            for name, trigger in (("configure", self.trigger_configure), ("activate", self.trigger_activate)):
                if trigger() != SUCCESS:
                    if self._configure_error is not None:
                        raise self._configure_error
                    raise NodeStartError(f"{self.get_fully_qualified_name()}: lifecycle transition {name} failed")
        finally:
            self._autostarting = False

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.pipeline = self._load()
        except Exception as e:  # the node stays unconfigured and says why (autostart re-raises it)
            self._configure_error = e
            if not self._autostarting:
                self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            return FAILURE
        self._configure_error = None
        self.get_logger().info(f"configured: {self._describe()}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # lifecycle publishers first: the first result is not dropped
        self.inputs = tuple(self._subscribe())
        self.active = True
        self._start_work()
        self.get_logger().info("active")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("inactive: input unsubscribed, no inference")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: models released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._release()
        self.finalized = True
        self.get_logger().info(f"finalized (shutdown from {state.label}): input unsubscribed, models released")
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: drop to unconfigured with everything released (configure may be retried)."""
        self.get_logger().error(f"lifecycle error while {state.label}: models released")
        self._deactivate()
        self._release()
        return SUCCESS

    def _deactivate(self) -> None:
        inputs, self.inputs = self.inputs, ()
        for sub in inputs:
            sub.destroy()
        if self.active:
            self.active = False
            self._stop_work()

    def _release(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            close_backends(pipeline)  # free the engines, buffers and contexts

    def destroy_node(self) -> None:
        """Stop and release in every state (also of a node whose construction failed), then destroy.

        rclpy's LifecycleNode keeps its state machine, which holds the node, until garbage collection: the
        node would stay in the ROS graph after destroy_node (and after a failed start). Destroyed here too.
        """
        self._deactivate()
        self._release()
        super().destroy_node()
        state_machine = getattr(self, "_state_machine", None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    @property
    def lifecycle_state(self) -> str:
        """The primary state this node is in: 'unconfigured', 'inactive', 'active' or 'finalized'."""
        if self.finalized:
            return "finalized"
        return "active" if self.active else "inactive" if self.pipeline is not None else "unconfigured"

    # ----------------------------------------------------------------------------------- services, status
    def _describe(self) -> str:
        return "backends " + ", ".join(f"{k}={v}" for k, v in self._backend_names().items())

    def _rebuild_engines(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """std_srvs/Trigger: rebuild every TensorRT engine (engine_build: force) and swap them in."""
        if self.pipeline is None:
            response.success, response.message = False, f"{self.lifecycle_state}: no models loaded (configure first)"
            return response
        names = self._backend_names()
        if not any(v.startswith("tensorrt") for v in names.values()):
            response.success = False
            response.message = f"backends are {names}: there are no TensorRT engines to rebuild"
            return response
        try:
            new = self._load(engine_build="force")
        except Exception as e:
            response.success, response.message = False, f"rebuild failed, old engines kept: {e}"
            return response
        close_backends(self._swap_pipeline(new))  # free the old engines, buffers and contexts
        response.success, response.message = True, "engines rebuilt"
        return response

    def _publish_diagnostics(self) -> None:
        if self.active:
            self.diag_pub.publish(self._active_diagnostics())
            return
        state = self.lifecycle_state
        level, message = OK, state
        if self._configure_error is not None:
            level, message = ERROR, f"configure failed: {type(self._configure_error).__name__}: {self._configure_error}"
        values = {"lifecycle_state": state, **({"backends": self._describe()} if self.pipeline is not None else {}),
                  **runtime_diagnostics()}
        self.diag_pub.publish(status_array(self, f"{self.get_name()}: {self.DIAGNOSTICS_NAME}",
                                           self.get_fully_qualified_name(), level, message, values))
