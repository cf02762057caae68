"""Minimal stdio JSON-RPC ping server on pygls 2.1.1.

Answers `initialize` with {"capabilities": {}} and `ping` with {}; exits when stdin reaches EOF.
Used by Benchmarks/run.sh as a comparison peer for rpc-bench.

Two pygls 2.1.1 details shape this file:
- It uses `JsonRPCServer` with the plain `JsonRPCProtocol`, not `LanguageServer`: the latter's built-in
  `initialize` structures the params as lsprotocol `InitializeParams`, which requires `capabilities`, and it
  answers with computed server capabilities rather than {"capabilities": {}}.
- pygls structures every request into `JsonRPCRequestMessage`, whose `params` attribute has no default, so a
  request that omits the (optional) `params` member fails to deserialize and is dropped without any response.
  rpc-bench's pings carry no params, so the converter below fills in `params: null` first.
"""

from pygls.protocol import JsonRPCProtocol, JsonRPCRequestMessage, default_converter
from pygls.protocol import _params_field_structure_hook
from pygls.server import JsonRPCServer


def converter_factory():
    converter = default_converter()

    def structure_request(obj, cls):
        obj.setdefault("params", None)
        return _params_field_structure_hook(obj, cls)

    converter.register_structure_hook(JsonRPCRequestMessage, structure_request)
    return converter


server = JsonRPCServer(protocol_cls=JsonRPCProtocol, converter_factory=converter_factory)


@server.feature("initialize")
def initialize(params):
    return {"capabilities": {}}


@server.feature("ping")
def ping(params):
    return {}


if __name__ == "__main__":
    # start_io reads Content-Length frames from stdin and returns on EOF.
    server.start_io()
