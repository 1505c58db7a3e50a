"""Runner extensions: hooks (``HOOKS``), loops (``LOOPS``), schedulers (``PARAM_SCHEDULERS``), a model wrapper
(``MODEL_WRAPPERS``), an atomic file backend and the trusted local checkpoint loader. Importing this package
registers them."""
from zoo.core.checkpoints import find_resume_checkpoint, is_complete_checkpoint

from .atomic import AtomicLocalBackend
from .checkpoint import register_trusted_local_loader
from .checkpoint_hook import AtomicCheckpointHook
from .distributed import CPUDistributedDataParallel, gather_with_grad, init_cpu_process_group
from .grad_share import GradientShareHook
from .hooks import ClassNamesHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .nonfinite import NonFiniteLossHook, TrainingDivergedError
from .progress import ProgressBarHook
from .resume import ExactResumeHook
from .schedulers import FixMatchCosineLR

register_trusted_local_loader()

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'CPUDistributedDataParallel', 'ClassNamesHook',
           'ExactResumeHook', 'FixMatchCosineLR', 'GradientShareHook', 'NonFiniteLossHook', 'ProgressBarHook',
           'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop', 'TrainingDivergedError',
           'find_resume_checkpoint', 'gather_with_grad', 'init_cpu_process_group', 'is_complete_checkpoint',
           'register_trusted_local_loader']
