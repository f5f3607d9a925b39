"""Refuse ONNX files whose tensors point at external data outside the model's folder.

An initializer may say "my bytes are in the file ``../../etc/shadow``"; onnxruntime
would read it. This walks the protobuf wire format (no ``onnx`` package needed, so the
edge agent stays small) and lists every external-data location in the graph, its
sub-graphs and its functions.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from millrace_common.errors import IntegrityError

# field numbers from onnx.proto3
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_FUNCTION_NODES = 7
_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE = 1, 5, 15
_NODE_ATTRIBUTES = 5
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE, _ATTR_SPARSES = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise IntegrityError("not an ONNX model: truncated protobuf")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(field number, bytes of a length-delimited field or None for scalars)."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            yield number, None
        elif wire == 2:
            size, pos = _varint(data, pos)
            yield number, data[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            yield number, None
        else:
            raise IntegrityError(f"not an ONNX model: unsupported wire type {wire}")


def _children(data: bytes, numbers: tuple[int, ...]) -> Iterator[tuple[int, bytes]]:
    for number, value in _fields(data):
        if number in numbers and value is not None:
            yield number, value


def _tensor_locations(tensor: bytes) -> Iterator[str]:
    for _n, entry in _children(tensor, (_TENSOR_EXTERNAL_DATA,)):
        pairs = dict(_children(entry, (_ENTRY_KEY, _ENTRY_VALUE)))
        if pairs.get(_ENTRY_KEY) == b"location":
            yield pairs.get(_ENTRY_VALUE, b"").decode(errors="replace")


def _sparse_locations(sparse: bytes) -> Iterator[str]:
    for _n, tensor in _children(sparse, (_SPARSE_VALUES, _SPARSE_INDICES)):
        yield from _tensor_locations(tensor)


def _node_locations(node: bytes) -> Iterator[str]:
    for _n, attribute in _children(node, (_NODE_ATTRIBUTES,)):
        for number, value in _children(
            attribute,
            (_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES),
        ):
            if number in (_ATTR_TENSOR, _ATTR_TENSORS):
                yield from _tensor_locations(value)
            elif number in (_ATTR_SPARSE, _ATTR_SPARSES):
                yield from _sparse_locations(value)
            else:
                yield from _graph_locations(value)


def _graph_locations(graph: bytes) -> Iterator[str]:
    for number, value in _children(graph, (_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE)):
        if number == _GRAPH_NODES:
            yield from _node_locations(value)
        elif number == _GRAPH_INITIALIZERS:
            yield from _tensor_locations(value)
        else:
            yield from _sparse_locations(value)


def external_data_locations(model: bytes) -> list[str]:
    """Every external-data ``location`` the model's tensors name."""
    found: list[str] = []
    for number, value in _children(model, (_MODEL_GRAPH, _MODEL_FUNCTIONS)):
        if number == _MODEL_GRAPH:
            found.extend(_graph_locations(value))
        else:
            for _n, node in _children(value, (_FUNCTION_NODES,)):
                found.extend(_node_locations(node))
    return found


def outside_folder(location: str) -> bool:
    normal = posixpath.normpath(location.replace("\\", "/"))
    return (
        not location
        or normal.startswith(("/", "../"))
        or normal == ".."
        or ":" in normal.split("/")[0]
    )


def refuse_external_data_outside_folder(model: bytes) -> None:
    """Raise IntegrityError if a tensor's data lives outside the model's own folder."""
    escaping = [loc for loc in external_data_locations(model) if outside_folder(loc)]
    if escaping:
        raise IntegrityError(
            f"the model references external data outside its folder: {sorted(set(escaping))}",
            field="artifact",
        )
