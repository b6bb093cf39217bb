"""Import float32 TFLite models (MediaPipe face mesh, BlazeFace) as ONNX with a dynamic batch.

Why: TFLite models ship with batch 1 and TensorFlow is too heavy for the robot; ONNX runs under ONNX
Runtime here and becomes a TensorRT engine on the robot, and one call over all faces of a frame is far
cheaper than N calls. ``tflite2onnx`` does the conversion without TensorFlow, but it (a) switches the
graph to NCHW, (b) hard-codes batch 1 and (c) keeps TFLite tensor names such as ``conv2d_20``. This
module undoes all three:

* inputs and outputs keep the TFLite layout and shape (NHWC stays NHWC), so the same pre/post-processing
  serves the TFLite and the ONNX model and the two can be compared array for array;
* dim 0 of every input and output becomes ``dim_param "batch"``; Reshape shape constants that pin batch 1
  get 0 ("copy the input's batch");
* ``rename`` gives tensors stable names. For the face mesh (:data:`FACE_MESH_NAMES`) the ONNX is:

  ========== =================== =========================================================
  name       shape               meaning
  ========== =================== =========================================================
  image      [batch,192,192,3]   RGB crop, float32 in [0, 1] (TFLite ``input_1``)
  landmarks  [batch,1,1,1404]    468 x (x, y, z) in 192-px crop pixels (TFLite ``conv2d_20``)
  face_flag  [batch,1,1,1]       face-presence logit; sigmoid > 0.5 = face (``conv2d_30``)
  ========== =================== =========================================================

The file is written atomically (temp file in the target directory, fsync, ``os.replace``) so a node that
loads the model while the tool runs never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from edge_infer.fileio import atomic_write_bytes
from edge_infer.models import face_mesh

#: TFLite tensor -> the zoo's face mesh I/O names (config/models.yaml ``face_mesh.litert.names``; LiteRT renames the same way)
FACE_MESH_NAMES: dict[str, str] = dict(face_mesh.TFLITE_NAMES)


def _tflite_io_shapes(tflite_path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the TFLite model's inputs and outputs (read with the ``tflite`` flatbuffer package)."""
    import tflite

    model = tflite.Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    shapes = {}
    for idx in [graph.Inputs(i) for i in range(graph.InputsLength())] + [
        graph.Outputs(i) for i in range(graph.OutputsLength())
    ]:
        t = graph.Tensors(idx)
        shapes[t.Name().decode()] = tuple(int(d) for d in t.ShapeAsNumpy())
    return shapes


def _dims(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def _restore_nhwc(model, tflite_shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Put back TFLite's NHWC layout on graph inputs/outputs that tflite2onnx turned into NCHW."""
    from onnx import helper

    g = model.graph
    for inp in g.input:
        want = tflite_shapes.get(inp.name)
        have = _dims(inp)
        if want and len(want) == 4 and list(want) != have and have == [want[0], want[3], want[1], want[2]]:
            inner = inp.name + "__nchw"
            for node in g.node:
                node.input[:] = [inner if x == inp.name else x for x in node.input]
            g.node.insert(0, helper.make_node("Transpose", [inp.name], [inner], perm=[0, 3, 1, 2]))
            for d, v in zip(inp.type.tensor_type.shape.dim, want):
                d.dim_value = v
    for out in g.output:
        want = tflite_shapes.get(out.name)
        have = _dims(out)
        if want and len(want) == 4 and list(want) != have and have == [want[0], want[3], want[1], want[2]]:
            inner = out.name + "__nchw"
            for node in g.node:
                node.output[:] = [inner if x == out.name else x for x in node.output]
                node.input[:] = [inner if x == out.name else x for x in node.input]
            g.node.append(helper.make_node("Transpose", [inner], [out.name], perm=[0, 2, 3, 1]))
            for d, v in zip(out.type.tensor_type.shape.dim, want):
                d.dim_value = v


def _make_batch_dynamic(model) -> None:
    """dim 0 of inputs/outputs -> "batch"; Reshape constants that pin batch 1 -> 0 (copy input dim 0)."""
    from onnx import numpy_helper

    g = model.graph
    for vi in list(g.input) + list(g.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = "batch"
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    for node in g.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in inits:
            shape = numpy_helper.to_array(inits[name]).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                inits[name].CopyFrom(numpy_helper.from_array(shape.astype(np.int64), name))
        elif name in consts:
            attr = consts[name].attribute[0]
            shape = numpy_helper.to_array(attr.t).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                attr.t.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), name))
    # tflite2onnx records batch-1 intermediate shapes; drop them so inference recomputes them symbolically
    del g.value_info[:]


def _rename(model, names: Mapping[str, str]) -> None:
    g = model.graph
    for node in g.node:
        node.input[:] = [names.get(x, x) for x in node.input]
        node.output[:] = [names.get(x, x) for x in node.output]
    for vi in list(g.input) + list(g.output):
        vi.name = names.get(vi.name, vi.name)


def tflite_to_onnx(
    tflite_path: str | os.PathLike,
    onnx_path: str | os.PathLike,
    dynamic_batch: bool = True,
    *,
    rename: Mapping[str, str] | None = None,
    keep_nhwc: bool = True,
) -> Path:
    """Convert a float32 TFLite model to a checked ONNX file and return its path.

    ``rename`` maps TFLite tensor names to ONNX names (use :data:`FACE_MESH_NAMES` for the face mesh).
    ``keep_nhwc`` keeps the TFLite input/output layout (see the module docstring for why).
    """
    import onnx
    import tflite2onnx

    tflite_path, onnx_path = Path(tflite_path), Path(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(tflite_path), str(raw))
        model = onnx.load(str(raw))
    if keep_nhwc:
        _restore_nhwc(model, _tflite_io_shapes(tflite_path))
    if dynamic_batch:
        _make_batch_dynamic(model)
    if rename:
        _rename(model, rename)
    # tflite2onnx emits initializers in set order (varies per process); sort so the bytes are reproducible
    inits = sorted(model.graph.initializer, key=lambda t: t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    model.doc_string = f"imported from {tflite_path.name} by edge_infer.offline.tflite_import"
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    atomic_write_bytes(onnx_path, model.SerializeToString())
    return onnx_path


def convert_face_mesh(tflite_path: str | os.PathLike, onnx_path: str | os.PathLike) -> Path:
    """The MediaPipe face mesh with the I/O names documented above (``image``/``landmarks``/``face_flag``)."""
    return tflite_to_onnx(tflite_path, onnx_path, dynamic_batch=True, rename=FACE_MESH_NAMES)
