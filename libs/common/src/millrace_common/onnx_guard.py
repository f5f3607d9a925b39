"""Refuse ONNX files whose tensors keep their bytes in other files (external data).

An initializer may say "my bytes are in the file ``logs/ingest.log``" (or ``/etc/shadow``,
or ``../secret``); onnxruntime, given the model as bytes, resolves that against the
process's working directory and would read it into the model, whose predictions then
return the file. A Millrace artifact is one self-contained file, so any external data at
all is refused. This walks the protobuf wire format (no ``onnx`` package needed, so the
edge agent stays small) through the graph, its sub-graphs, its functions and its training
graphs, and finds every tensor that names a location or is marked ``EXTERNAL``.
"""

from __future__ import annotations

from collections.abc import Iterator

from millrace_common.errors import IntegrityError

# field numbers from onnx.proto3
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 20, 25
_TRAINING_GRAPHS = (1, 2)  # initialization, algorithm
_FUNCTION_NODES = 7
_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE = 1, 5, 15
_NODE_ATTRIBUTES = 5
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE, _ATTR_SPARSES = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
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


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int | None]]:
    """(field number, the bytes of a length-delimited field, a varint's value, or None
    for fixed-width scalars)."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
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
        if number in numbers and isinstance(value, bytes):
            yield number, value


def _tensor_locations(tensor: bytes) -> Iterator[str]:
    """The tensor's external-data location: named, or "" for one marked EXTERNAL without."""
    locations, external = [], False
    for number, value in _fields(tensor):
        if number == _TENSOR_EXTERNAL_DATA and isinstance(value, bytes):
            pairs = dict(_children(value, (_ENTRY_KEY, _ENTRY_VALUE)))
            if pairs.get(_ENTRY_KEY) == b"location":
                locations.append(pairs.get(_ENTRY_VALUE, b"").decode(errors="replace"))
            external = True
        elif number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
            external = True
    yield from locations or ([""] if external else [])


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
    """Every external-data ``location`` the model's tensors name ("" for a tensor marked
    external that names none)."""
    found: list[str] = []
    for number, value in _children(model, (_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS)):
        if number == _MODEL_GRAPH:
            found.extend(_graph_locations(value))
        elif number == _MODEL_TRAINING:
            for _n, graph in _children(value, _TRAINING_GRAPHS):
                found.extend(_graph_locations(graph))
        else:
            for _n, node in _children(value, (_FUNCTION_NODES,)):
                found.extend(_node_locations(node))
    return found


class ExternalData(IntegrityError):
    """The model's tensors name external data: it is refused, whatever the location."""


def refuse_external_data(model: bytes) -> None:
    """Raise ExternalData, with a one-line reason, if any tensor's data is meant to be read
    from a file rather than from the model itself; IntegrityError if ``model`` is not a
    protobuf at all."""
    locations = external_data_locations(model)
    if locations:
        named = sorted(set(locations))
        clipped = (loc if len(loc) <= 200 else f"{loc[:197]}..." for loc in named[:3])
        shown = ", ".join(repr(loc) for loc in clipped)  # repr: one line, whatever it holds
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        raise ExternalData(
            f"the model reads tensor data from files ({shown}{more}): a Millrace artifact "
            "must be one self-contained file",
            field="artifact",
        )
