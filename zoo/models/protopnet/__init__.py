"""Prototype networks: ``ProtoPNet`` (Chen et al., NeurIPS 2019) and "Explaining Prototypes" (Nauta et al.).

- :class:`ProtoPNet` (``MODELS``): the model, its loss and its "this looks like that" explanation;
- :mod:`.push`: projecting prototypes onto their nearest latent training patches of their own class;
- :mod:`.training`: ``ProtoPNetStages`` (``HOOKS``), the warm-up / joint / push / last-layer schedule by epoch;
- :mod:`.modifications` and :mod:`.characteristics`: how much hue, shape, texture, contrast, saturation and
  brightness matter to each prototype (local and global scores, CSV and charts).

See docs/prototypes.md.
"""
from .explanation import PrototypeExplanation
from .model import EXPLAINING_PROTOTYPES_PAPER, LOSS_WEIGHTS, PROTOPNET_PAPER, ProtoPNet

__all__ = ['ProtoPNet', 'PrototypeExplanation', 'LOSS_WEIGHTS', 'PROTOPNET_PAPER', 'EXPLAINING_PROTOTYPES_PAPER']
