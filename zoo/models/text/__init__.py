"""Text encoders and prompt learners (registry ``TEXT_ENCODERS``), used by LICO's alignment heads.

Importing this package is cheap: open_clip and transformers are imported when an encoder is built.

Registered: ``OpenCLIPTextEncoder``, ``HFTextEncoder``, ``SharedPromptLearner``, ``ClassSpecificPromptLearner``,
``RolledPromptLearner`` and ``LICOTextBranch`` (encoder + prompt learner + class names, shared by the heads).
"""
from .base import PromptBatch, TextEncoder, TextFeatures
from .branch import LICOTextBranch
from .hf_encoder import HFTextEncoder
from .open_clip_encoder import OpenCLIPTextEncoder
from .prompt_learners import ClassSpecificPromptLearner, PromptLearner, RolledPromptLearner, SharedPromptLearner

__all__ = ['PromptBatch', 'TextEncoder', 'TextFeatures', 'LICOTextBranch', 'HFTextEncoder', 'OpenCLIPTextEncoder',
           'PromptLearner', 'SharedPromptLearner', 'ClassSpecificPromptLearner', 'RolledPromptLearner']
