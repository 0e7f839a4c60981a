"""Where the rounds, results and runners were before issue #21 split this module; kept so that
``from ragsc.federated.engine import ...`` goes on working. New code imports from :mod:`ragsc.federated`
or from the modules that hold each name now:

* :mod:`~ragsc.federated.coordinator`: :class:`Coordinator`, :class:`Transport`, :class:`InProcessTransport`,
  :class:`FederationError`;
* :mod:`~ragsc.federated.results`: :class:`RoundReport`, :class:`FederatedResult`, :func:`plot_runs`;
* :mod:`~ragsc.federated.setup`: :func:`build_model`, :func:`image_size`, :func:`train_items`,
  :func:`partition`, :func:`client_items`;
* :mod:`~ragsc.federated.run`: :func:`run_federated`, :func:`inprocess`, :func:`centralised_spec`.
"""

from ragsc.federated.coordinator import Coordinator, FederationError, InProcessTransport, Transport
from ragsc.federated.protocol import EVALUATOR
from ragsc.federated.results import FederatedResult, RoundReport, plot_runs
from ragsc.federated.run import centralised_spec, inprocess, run_federated
from ragsc.federated.setup import build_model, client_items, image_size, partition, train_items

__all__ = ["EVALUATOR", "Coordinator", "FederatedResult", "FederationError", "InProcessTransport",
           "RoundReport", "Transport", "build_model", "centralised_spec", "client_items", "image_size",
           "inprocess", "partition", "plot_runs", "run_federated", "train_items"]
