"""Prometheus's remote-write messages (prompb/types.proto, remote.proto) built at run time with
the protobuf package, so tests decode what the exporter sends with an independent decoder."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _messages() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="prompb_test.proto", package="prompb", syntax="proto3")
    shapes = {
        "Label": [("name", 1, _F.TYPE_STRING, None, False), ("value", 2, _F.TYPE_STRING, None, False)],
        "Sample": [("value", 1, _F.TYPE_DOUBLE, None, False), ("timestamp", 2, _F.TYPE_INT64, None, False)],
        "TimeSeries": [
            ("labels", 1, _F.TYPE_MESSAGE, ".prompb.Label", True),
            ("samples", 2, _F.TYPE_MESSAGE, ".prompb.Sample", True),
        ],
        "WriteRequest": [("timeseries", 1, _F.TYPE_MESSAGE, ".prompb.TimeSeries", True)],
    }
    for name, fields in shapes.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = message.field.add(name=field_name, number=number, type=kind)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prompb.{name}")) for name in shapes}


MESSAGES = _messages()
WriteRequest = MESSAGES["WriteRequest"]


def decode(payload: bytes) -> list[tuple[list[tuple[str, str]], list[tuple[int, float]]]]:
    request = WriteRequest()
    request.ParseFromString(payload)
    return [
        ([(label.name, label.value) for label in ts.labels], [(s.timestamp, s.value) for s in ts.samples])
        for ts in request.timeseries
    ]
