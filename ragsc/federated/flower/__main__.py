"""``python -m ragsc.federated.flower client SPEC_JSON PARTITION ADDRESS``: one gRPC client of a federation
(what :func:`~ragsc.federated.flower.run_grpc` starts per client)."""

import sys

from ragsc.federated.flower.runners import _client_main

if __name__ == "__main__":
    _client_main(sys.argv[1:])
