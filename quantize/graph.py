"""What a .tflite really holds, read from its flatbuffer rather than from an interpreter.

    from quantize.graph import ops
    ops(Path("build/int8.tflite").read_bytes())[0]
    # Op(name='CONV_2D', inputs=('int8', 'int8', 'int32'), outputs=('int8',), tensor='...Conv1...')

The converter does not fail when an op has no int8 kernel under
``TFLITE_BUILTINS_INT8``: it leaves the op in float32 between a DEQUANTIZE and a
QUANTIZE. ``float_ops`` finds such ops so that ``quantize`` can refuse the model.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    name: str          # builtin op name, e.g. CONV_2D
    inputs: tuple      # tensor types, e.g. ('int8', 'int8', 'int32'); '' for an omitted input
    outputs: tuple
    tensor: str        # name of the first output tensor: carries the Keras layer name


def _model(model_bytes: bytes):
    from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))


def _type(tensor) -> str:
    from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils.type_to_name(tensor.type).lower()


def ops(model_bytes: bytes) -> list[Op]:
    """Every operator of every subgraph, in execution order."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = _model(model_bytes)
    out = []
    for graph in model.subgraphs:
        t = graph.tensors

        def types(indices):
            return tuple(_type(t[i]) if i >= 0 else "" for i in (indices if indices is not None else []))

        for op in graph.operators or []:
            first = op.outputs[0] if op.outputs is not None and len(op.outputs) else -1
            name = t[first].name.decode() if first >= 0 and t[first].name else ""
            out.append(Op(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex),
                          types(op.inputs), types(op.outputs), name))
    return out


def io_types(model_bytes: bytes) -> tuple[list[str], list[str]]:
    """Types of the main subgraph's input and output tensors."""
    graph = _model(model_bytes).subgraphs[0]
    return ([_type(graph.tensors[i]) for i in graph.inputs],
            [_type(graph.tensors[i]) for i in graph.outputs])


FLOAT = {"float32", "float16", "float64"}
EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}   # the only ops allowed to touch floats in an integer model


def float_ops(model_bytes: bytes) -> list[Op]:
    """Ops, other than QUANTIZE/DEQUANTIZE, that read or write a float tensor."""
    return [op for op in ops(model_bytes)
            if op.name not in EDGE_OPS and FLOAT & set(op.inputs + op.outputs)]
