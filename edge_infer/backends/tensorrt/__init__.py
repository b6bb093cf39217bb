"""TensorRT: engine build, engine cache and the runtime backend, in one subpackage under the runtime layer.

One place per decision (a newcomer looks here, not in the tools):

- :mod:`.trt`          import ``tensorrt`` with the install hint, its version and the one major-version parser,
                       the one shared ``trt.Logger``, availability for ``backend: auto``;
- :mod:`.cuda`         the CUDA layer (device discovery, primary context, pinned buffers, stream, graphs);
- :mod:`.sidecar`      the engine identity (TensorRT + GPU), the JSON sidecar, the ONNX digest (external data
                       kept inside the model's folder) and the one gate before deserializing
                       (``load_trusted_engine`` + ``deserialize_engine``, shared by the runtime and inspect);
- :mod:`.engine_trust` the engine key (HMAC-SHA256 tag ``<engine>.hmac`` over engine + sidecar) and the engine
                       folder's ownership / permissions;
- :mod:`.build`        what to build (options, profiles, the strongly-typed rule, the int8-needs-QDQ rule,
                       trtexec/polygraphy command lines) and the TensorRT builder calls;
- :mod:`.cache`        the engine cache (key, policies auto/never/force) and ``engine_for`` used by
                       ``create_backend``;
- :mod:`.runtime`      :class:`~.runtime.TensorRTBackend` (named tensors, ``execute_async_v3``);
- :mod:`.engine_info`  ``edge-infer inspect x.engine``.

Nothing here imports the offline tools, the benchmarks, the commands or ROS; they import this.
Importing the package imports no TensorRT and no CUDA: the heavy modules load inside the functions.
"""
