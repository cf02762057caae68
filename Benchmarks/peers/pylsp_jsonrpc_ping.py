"""Minimal stdio JSON-RPC ping server on python-lsp-jsonrpc 1.1.2 (the transport under python-lsp-server).

Answers `initialize` with {"capabilities": {}} and `ping` with {}; exits when stdin reaches EOF.
Used by Benchmarks/run.sh as a comparison peer for rpc-bench.
"""

import sys

from pylsp_jsonrpc.endpoint import Endpoint
from pylsp_jsonrpc.streams import JsonRpcStreamReader, JsonRpcStreamWriter


def main() -> None:
    reader = JsonRpcStreamReader(sys.stdin.buffer)
    writer = JsonRpcStreamWriter(sys.stdout.buffer)
    # A plain dict works as the dispatcher: Endpoint only does dispatcher[method](params).
    # Handlers return plain values, so Endpoint answers inline on the reader thread (no executor hop).
    dispatcher = {
        "initialize": lambda params: {"capabilities": {}},
        "ping": lambda params: {},
    }
    endpoint = Endpoint(dispatcher, writer.write)
    try:
        # listen() returns when readline() hits EOF.
        reader.listen(endpoint.consume)
    finally:
        endpoint.shutdown()
        writer.close()


if __name__ == "__main__":
    main()
