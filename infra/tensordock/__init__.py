"""TensorDock GPU VM as a Pulumi dynamic resource (the REST client itself is ``brain.gpu.tensordock``)."""
