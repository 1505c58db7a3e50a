"""Small numeric kernels with no model knowledge."""
