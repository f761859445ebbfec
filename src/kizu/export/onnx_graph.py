"""Writing a detector's tensor part as ONNX (``export_tensor_part``) with PyTorch's TorchScript-based
exporter (``torch.onnx.export(..., dynamo=False)``: it works offline; the dynamo exporter needs
``onnxscript``). Opset 17, the batch axis dynamic, H and W fixed (a model works at one size).

The graph is the detector's ``tensor_module`` (``kizu.detectors._components.onnx_parts``): images
``(N, C, H, W)`` float32 at the model's working size → ``maps`` ``(N, H, W)`` float32 (and ``scores``
``(N,)`` for ``mt``). ``knn="int8"`` (``patch-knn``) screens the memory with an int8 product and
decides among the best ``k + rerank`` candidates by exact distances (onnxruntime's
``com.microsoft`` operators; faster, not portable to other ONNX runtimes).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper, numpy_helper

from ..detectors._components.onnx_parts import PatchKNNPart, _Call, queries_per_image, tensor_module
from ..runtime.onnx_runtime import META_KEY

OPSET = 17
#: at most this many k-NN queries (images × grid cells) per session call: bounds the k-NN block
MAX_QUERIES = 8192


def _memory_as_float16(model) -> None:
    """Store the k-NN memory (the ``Gemm`` B inputs that are initializers) as float16 with a ``Cast``
    to float32 in front: the exporter's constant folding turns the module's own cast into a float32
    constant again. The values are already float16-rounded (``PatchKNNPart``), so nothing changes."""
    inits = {t.name: t for t in model.graph.initializer}
    casts = []
    for node in model.graph.node:
        if node.op_type != "Gemm" or node.input[1] not in inits:
            continue
        t = inits[node.input[1]]
        if t.data_type != TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name + "_f16")
        model.graph.initializer.remove(t)
        model.graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [t.name], to=TensorProto.FLOAT, name=t.name + "_cast"))
        del inits[t.name]
    for c in reversed(casts):  # before every use (the graph is topologically sorted)
        model.graph.node.insert(0, c)


def _knn_int8_graph(part, k: int, rerank: int, opset: int):
    """``q`` (Q, D) centred → ``dist`` (Q,): int8 screening (``DynamicQuantizeLinear`` +
    ``com.microsoft.MatMulIntegerToFloat`` with per-row memory scales, bias −‖m‖²/2, so the output
    is q·m − ‖m‖²/2) → ``TopK(k + rerank)`` → the candidates' exact distances → the mean of the k
    smallest. As ``NNIndex``'s low-precision search: only near-ties can swap."""
    m = torch.cat([getattr(part, f"mt{i}").to(torch.float32).T for i in part.chunks]).numpy()  # (M, D)
    scale = np.maximum(np.abs(m).max(axis=1), 1e-30) / 127.0
    m8 = np.clip(np.round(m / scale[:, None]), -127, 127).astype(np.int8)
    mm = (m.astype(np.float64) ** 2).sum(1)
    r = min(k + int(rerank), len(m))  # candidates kept: k + rerank, as NNIndex's k + RERANK
    inits = [numpy_helper.from_array(np.ascontiguousarray(m8.T), "knn_m8T"),
             numpy_helper.from_array(scale.astype(np.float32), "knn_scale"),
             numpy_helper.from_array(np.zeros(len(m), np.int8), "knn_zp"),
             numpy_helper.from_array((-0.5 * mm).astype(np.float32), "knn_bias"),
             numpy_helper.from_array(np.ascontiguousarray(m, dtype=np.float32), "knn_m"),
             numpy_helper.from_array(np.array([r], np.int64), "knn_r"),
             numpy_helper.from_array(np.array([2], np.int64), "knn_ax2"),
             numpy_helper.from_array(np.array([1], np.int64), "knn_ax1")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["q"], ["knn_q8", "knn_qs", "knn_qz"]),
             helper.make_node("MatMulIntegerToFloat", ["knn_q8", "knn_m8T", "knn_qs", "knn_scale", "knn_qz", "knn_zp",
                                                      "knn_bias"], ["knn_s"], domain="com.microsoft"),
             helper.make_node("TopK", ["knn_s", "knn_r"], ["knn_v", "knn_idx"], axis=1, largest=1, sorted=0),
             helper.make_node("Gather", ["knn_m", "knn_idx"], ["knn_cand"], axis=0),  # (Q, R, D)
             helper.make_node("Unsqueeze", ["q", "knn_ax1"], ["knn_q3"]),
             helper.make_node("Sub", ["knn_cand", "knn_q3"], ["knn_diff"]),
             helper.make_node("Mul", ["knn_diff", "knn_diff"], ["knn_sq"]),
             helper.make_node("ReduceSum", ["knn_sq", "knn_ax2"], ["knn_d2"], keepdims=0),
             helper.make_node("Sqrt", ["knn_d2"], ["knn_d"])]
    if k == 1:
        nodes.append(helper.make_node("ReduceMin", ["knn_d"], ["dist"], axes=[1], keepdims=0))
    else:
        inits.append(numpy_helper.from_array(np.array([k], np.int64), "knn_k"))
        nodes += [helper.make_node("TopK", ["knn_d", "knn_k"], ["knn_best", "knn_bi"], axis=1, largest=0),
                  helper.make_node("ReduceMean", ["knn_best"], ["dist"], axes=[1], keepdims=0)]
    inputs = [helper.make_tensor_value_info("q", TensorProto.FLOAT, ["Q", m.shape[1]])]
    outputs = [helper.make_tensor_value_info("dist", TensorProto.FLOAT, ["Q"])]
    graph = helper.make_graph(nodes, "knn_int8", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def _torch_to_onnx(mod: torch.nn.Module, example: torch.Tensor, inp: str, out: str | list[str], opset: int = OPSET):
    """``mod(example)`` as an ONNX model with input ``inp`` and outputs ``out``, the first axis dynamic."""
    outputs = [out] if isinstance(out, str) else list(out)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on constant shapes; the exporter's deprecation
        torch.onnx.export(mod, (example,), buf, dynamo=False, opset_version=opset, input_names=[inp],
                          output_names=outputs, dynamic_axes={inp: {0: "n"}, **{o: {0: "n"} for o in outputs}},
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _int8_knn_model(detector, size, channels, rerank: int, opset: int):
    """The patch-knn tensor part with an int8-screened k-NN: torch-exported features and tail around a
    hand-built k-NN graph (``onnx.compose``)."""
    part = PatchKNNPart(detector, size, channels).eval()
    head = _torch_to_onnx(_Call(part, "queries"), torch.rand(2, channels, *size), "images", "q", opset)
    q_len = 2 * part.grid[0] * part.grid[1]
    tail = _torch_to_onnx(_Call(part, "tail"), torch.rand(q_len), "dist", "maps", opset)
    knn = _knn_int8_graph(part, part.k, rerank, opset)
    knn.ir_version = head.ir_version
    for m in (head, tail):  # a common opset list for compose
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    head = compose.add_prefix(head, "f_", rename_inputs=False, rename_outputs=False)  # torch's names clash
    tail = compose.add_prefix(tail, "t_", rename_inputs=False, rename_outputs=False)
    first = compose.merge_models(head, knn, io_map=[("q", "q")])
    return compose.merge_models(first, tail, io_map=[("dist", "dist")])


def export_tensor_part(detector, size: tuple[int, int], channels: int, path: str | Path, *,
                       memory_dtype: str = "float32", knn: str = "float32", rerank: int = 4) -> dict[str, Any]:
    """Write ``detector``'s tensor part for ``(N, channels, *size)`` images to ``path`` (ONNX); returns
    the description also stored in the file's metadata (``META_KEY``: size, channels, outputs,
    ``max_batch``, the most images per call that keep the k-NN block under ``MAX_QUERIES`` queries)."""
    size = (int(size[0]), int(size[1]))
    outputs = ["maps", "scores"] if detector.name == "mt" else ["maps"]
    q = queries_per_image(detector, size)
    if knn not in ("float32", "int8") or (knn == "int8" and detector.name != "patch-knn"):
        raise ValueError(f"knn must be float32, or int8 for patch-knn, not {knn!r}")
    meta = {"detector": detector.name, "size": list(size), "channels": int(channels), "outputs": outputs,
            "max_batch": max(1, MAX_QUERIES // q) if q else 0, "memory_dtype": memory_dtype if q else None,
            "knn": knn if q else None, "opset": OPSET}
    if knn == "int8":
        model = _int8_knn_model(detector, size, channels, rerank, OPSET)
    else:
        mod = tensor_module(detector, size, channels, memory_dtype=memory_dtype)
        model = _torch_to_onnx(mod, torch.rand(2, channels, *size), "images", outputs)
        if q and memory_dtype == "float16":
            _memory_as_float16(model)
    helper.set_model_props(model, {META_KEY: json.dumps(meta)})
    onnx.checker.check_model(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return meta
