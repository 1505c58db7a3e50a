"""The ground floor: what every layer may import, with the standard library only (no torch, no mmengine).

- :mod:`zoo.core.fileio`: the one atomic writer (bytes, text, JSON, files written by other libraries), sha256,
  leftovers of killed writes, the work-dir lock;
- :mod:`zoo.core.checkpoints`: the one checkpoint locator of a work dir;
- :mod:`zoo.core.limits`: caps for untrusted inputs (JSON depth and size, tensor shapes, names).
- :mod:`zoo.core.assets`: what a component reads from outside its config (weights, dataset folders, packages),
  declared as data by its ``required_assets``; checked by ``zoo.apis.preflight``.

Errors live in :mod:`registry.errors` (also standard library only).
"""
