"""One Pulumi ComponentResource per concern: network, brain VM (Oracle A1), GPU VM (TensorDock)."""
