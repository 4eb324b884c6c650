"""What an fp16/bf16 conversion keeps in fp32 besides the nodes the user names, decided before
onnxruntime's float16 converter runs (``precision._to_fp16``):

- a constant (initializer or ``Constant`` node) that fp16 cannot hold: a finite value over
  65504, or nonzero values that are all below fp16's smallest subnormal (2**-24), so the whole
  tensor would read as zero. The converter would clamp it (1e8 becomes 65504, 1e-9 becomes 6e-8);
  instead the constant and every node reading it stay fp32. A value between two kept nodes stays
  fp32 too, so ``x * 1e8 / 1e8`` is computed as written. fp16 only: bf16 has fp32's range;
- the constants a kept node reads: a ``Constant`` read only by kept nodes stays fp32 with them,
  and a constant that other nodes read in fp16 is given to the kept nodes as an fp32 copy (the
  converter would otherwise round it to fp16 and cast it back);
- ``LayerNormalization`` in ``keep_fp32_ops`` also matches LayerNorm as exporters write it out:
  ReduceMean -> Sub -> Pow (or Mul of the difference by itself) -> ReduceMean -> Add -> Sqrt ->
  Div. The sum of squares inside overflows fp16 long before the normalized result does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.model import all_graphs

FP16_MAX = 65504.0
FP16_SMALLEST = 2.0**-24  # the smallest fp16 subnormal
LAYER_NORM = "LayerNormalization"


@dataclass(frozen=True)
class KeptInFp32:
    """The converter's node block list, and the constants kept in fp32 for their range."""

    nodes: tuple[str, ...]
    out_of_range: tuple[str, ...]


def keep_in_fp32(
    model: onnx.ModelProto, keep_ops: Sequence[str], keep_nodes: Sequence[str], *, fp16_range: bool
) -> KeptInFp32:
    """Prepare ``model`` (in place) for the converter and return the node names it must keep in
    fp32, the user's ``keep_nodes`` among them. Unnamed nodes that are kept get a name (the
    converter blocks nodes by name); kept nodes that share a constant with fp16 nodes read an
    fp32 copy of it. ``fp16_range`` adds the constants fp16 cannot hold."""
    blocked: set[str] = set(keep_nodes)
    out_of_range: list[str] = []
    for graph in all_graphs(model.graph):
        islands = _GraphIslands(graph)
        kept = [n for n in graph.node if n.op_type in keep_ops or (n.name and n.name in keep_nodes)]
        if LAYER_NORM in keep_ops:
            kept += layer_norm_nodes(graph)
        if fp16_range:
            ranged = islands.out_of_fp16_range()
            out_of_range += ranged
            kept += [node for name in ranged for node in islands.readers(name)]
        blocked |= islands.keep(kept)
    return KeptInFp32(tuple(sorted(blocked)), tuple(out_of_range))


def out_of_fp16_range(values: np.ndarray) -> bool:
    """A finite value over fp16's largest, or nonzero values that are all below its smallest."""
    magnitudes = np.abs(values[np.isfinite(values)]).astype(np.float64)
    if not magnitudes.size:
        return False
    if magnitudes.max() > FP16_MAX:
        return True
    largest = magnitudes.max()
    return bool(0 < largest < FP16_SMALLEST)


def names_used(node: onnx.NodeProto) -> set[str]:
    """A node's inputs and the outer-scope names its subgraphs read."""
    names = set(node.input)
    for attribute in node.attribute:
        subgraphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for subgraph in subgraphs:
            for inner in subgraph.node:
                names |= names_used(inner)
    return names


def layer_norm_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes of every LayerNorm written out as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div."""
    producer = {name: node for node in graph.node for name in node.output}
    found: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Div" and len(node.input) == 2:
            found += _layer_norm_ending_at(node, producer)
    return found


def _layer_norm_ending_at(div: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> list[onnx.NodeProto]:
    centered, deviation = div.input
    sqrt = _made_by(producer, deviation, "Sqrt")
    add = _made_by(producer, sqrt.input[0], "Add") if sqrt is not None else None
    if add is None:
        return []
    variance = next((n for n in (_made_by(producer, i, "ReduceMean") for i in add.input) if n is not None), None)
    square = _squared(producer, variance.input[0], centered) if variance is not None and variance.input else None
    sub = _made_by(producer, centered, "Sub")
    if square is None or sub is None or len(sub.input) != 2:
        return []
    mean = _made_by(producer, sub.input[1], "ReduceMean")
    if mean is None or not mean.input or mean.input[0] != sub.input[0]:
        return []
    assert sqrt is not None and variance is not None
    return [mean, sub, square, variance, add, sqrt, div]


def _made_by(producer: dict[str, onnx.NodeProto], name: str, op_type: str) -> onnx.NodeProto | None:
    node = producer.get(name)
    return node if node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx") else None


def _squared(producer: dict[str, onnx.NodeProto], name: str, base: str) -> onnx.NodeProto | None:
    """The node making ``name`` as ``base`` squared: Pow(base, 2) or Mul(base, base)."""
    pow_node = _made_by(producer, name, "Pow")
    if pow_node is not None and pow_node.input[0] == base:
        return pow_node
    mul = _made_by(producer, name, "Mul")
    return mul if mul is not None and list(mul.input) == [base, base] else None


class FreshNames:
    """Names no tensor, node or initializer of the graph has yet."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._taken = {name for node in graph.node for name in [*node.input, *node.output, node.name]}
        self._taken |= {init.name for init in graph.initializer} | {info.name for info in graph.input}

    def __call__(self, base: str) -> str:
        name, suffix = base, 0
        while name in self._taken:
            suffix += 1
            name = f"{base}_{suffix}"
        self._taken.add(name)
        return name


class _GraphIslands:
    """One graph's float constants, who reads them, and the fp32 copies made for kept nodes."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT}
        self.constants = {node.output[0]: node for node in graph.node if _float_constant(node) is not None}
        self._fresh = FreshNames(graph)
        self._readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in names_used(node):
                self._readers.setdefault(name, []).append(node)

    def readers(self, name: str) -> list[onnx.NodeProto]:
        return list(self._readers.get(name, ()))

    def out_of_fp16_range(self) -> list[str]:
        values = {name: numpy_helper.to_array(init) for name, init in self.initializers.items()}
        for name, node in self.constants.items():
            tensor = _float_constant(node)
            assert tensor is not None
            values[name] = numpy_helper.to_array(tensor)
        return sorted(name for name, array in values.items() if out_of_fp16_range(array))

    def keep(self, kept: Iterable[onnx.NodeProto]) -> set[str]:
        """Name the kept nodes, keep the constants they read in fp32; the names to block."""
        nodes = {id(node): node for node in kept}
        for node in nodes.values():
            if not node.name:
                node.name = self._fresh(f"{node.op_type}_fp32")
        extra: list[onnx.NodeProto] = []
        for name in sorted({i for node in nodes.values() for i in node.input if self._is_constant(i)}):
            readers = self.readers(name)
            if all(id(reader) in nodes for reader in readers):
                if name in self.constants:
                    extra.append(self.constants[name])
            else:
                extra += self._fp32_copy(name, [r for r in readers if id(r) in nodes])
        return {node.name for node in [*nodes.values(), *extra]}

    def _is_constant(self, name: str) -> bool:
        return name in self.initializers or name in self.constants

    def _fp32_copy(self, name: str, readers: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """Point ``readers`` at a copy of constant ``name`` of their own; the copy's node (for a
        Constant) is returned, to be kept in fp32 with them."""
        copy = self._fresh(f"{name}_fp32")
        made: list[onnx.NodeProto] = []
        if name in self.initializers:
            tensor = TensorProto()
            tensor.CopyFrom(self.initializers[name])
            tensor.name = copy
            self.graph.initializer.append(tensor)
        else:
            node = helper.make_node("Constant", [], [copy], name=self._fresh(f"{copy}_node"))
            node.attribute.extend(self.constants[name].attribute)
            self.graph.node.insert(0, node)  # no inputs: first is always in order
            made.append(node)
        for reader in readers:
            for i, used in enumerate(reader.input):
                if used == name:
                    reader.input[i] = copy
        return made


def _float_constant(node: onnx.NodeProto) -> TensorProto | None:
    """The fp32 tensor a ``Constant`` node holds, else None."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
            tensor: TensorProto = attribute.t
            return tensor
    return None
