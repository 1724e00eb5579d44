"""The GPU VM on demand: start/stop control and idle stop, the TensorDock client, the cost ledger and report."""
