"""``ProtoPNetStages`` (``HOOKS``): ProtoPNet's training schedule as recipe stages, by epoch, resumable.

The stages run in the order given; each of ``warm``, ``joint`` and ``last_layer`` lasts ``epochs`` epochs of the
Runner's epoch loop (their sum must equal ``train_cfg.max_epochs``), and ``push`` happens at the end of the epoch
before it (after that epoch's training, before its checkpoint and validation):

- ``warm``: add-on layers and prototypes train, backbone and last layer frozen;
- ``joint``: backbone, add-on layers and prototypes train (last layer frozen: the official code's warm and joint
  optimizers do not hold it);
- ``push``: every prototype becomes its nearest latent training patch of its own class (see :mod:`.push`);
- ``last_layer``: only the last layer trains (convex given the prototypes; its L1 term drives wrong-class
  connections to 0).

Which parameters train is a function of the epoch only, and a push happens before the checkpoint of its epoch is
written, so a run resumed from any checkpoint continues exactly where the uninterrupted run was. Parameters frozen
by the model's own config (``freeze_until`` of the backbone) stay frozen in every stage. The push runs in eval mode
and leaves the random generators as they were, so it does not change the training stream.

Learning rates come from the optimizer config (one Adam; ``paramwise_cfg.custom_keys`` give the paper's per-part
rates, see the recipes); ``joint_lr_step``/``joint_lr_gamma`` reproduce the official joint-optimizer ``StepLR``:
in the k-th joint epoch (0-based) the backbone, add-on and prototype groups run at ``lr · gamma^(k // step)``.

Example (a config)::

    custom_hooks = [dict(type='ProtoPNetStages', stages=[
        dict(stage='warm', epochs=5), dict(stage='joint', epochs=5), dict(stage='push'),
        dict(stage='last_layer', epochs=20)])]
    train_cfg = dict(by_epoch=True, max_epochs=30)
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.hooks import Hook

from registry import HOOKS
from registry.errors import ConfigError

EPOCH_STAGES = {'warm': ('add_on', 'prototypes'), 'joint': ('backbone', 'add_on', 'prototypes'),
                'last_layer': ('last_layer',)}
"""The parts that train in each epoch stage."""
STAGES = (*EPOCH_STAGES, 'push')


def parse_stages(stages: Sequence[Mapping[str, Any]]) -> tuple[list[str], set[int]]:
    """``(stage name of each epoch, epochs after which a push runs)`` from the hook's ``stages`` list.

    Example:
        >>> plan, pushes = parse_stages([dict(stage='warm', epochs=1), dict(stage='joint', epochs=2),
        ...                              dict(stage='push'), dict(stage='last_layer', epochs=1)])
        >>> plan, sorted(pushes)
        (['warm', 'joint', 'joint', 'last_layer'], [2])
    """
    if isinstance(stages, (str, Mapping)) or not isinstance(stages, Sequence) or not stages:
        raise ConfigError("ProtoPNetStages: stages must be a non-empty list such as [dict(stage='warm', epochs=5), "
                          "dict(stage='joint', epochs=5), dict(stage='push'), dict(stage='last_layer', epochs=20)].")
    plan: list[str] = []
    pushes: set[int] = set()
    for i, item in enumerate(stages):
        if not isinstance(item, Mapping) or item.get('stage') not in STAGES:
            got = item.get('stage') if isinstance(item, Mapping) else item
            raise ConfigError(f'ProtoPNetStages: stages[{i}] must be a dict with stage one of {", ".join(STAGES)}; '
                              f'got {got!r}.')
        extra = sorted(set(item) - {'stage', 'epochs'})
        if extra:
            raise ConfigError(f'ProtoPNetStages: stages[{i}] has unknown key {extra[0]!r} (keys: stage, epochs).')
        if item['stage'] == 'push':
            if 'epochs' in item:
                raise ConfigError(f'ProtoPNetStages: stages[{i}] (push) takes no epochs; it runs once, at the end of '
                                  'the epoch before it.')
            if not plan:
                raise ConfigError('ProtoPNetStages: a push needs an epoch of training before it (the prototypes are '
                                  'projected onto the trained latent space); put a warm or joint stage first.')
            pushes.add(len(plan) - 1)
            continue
        epochs = item.get('epochs')
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f'ProtoPNetStages: stages[{i}] ({item["stage"]}) needs epochs, a positive integer; '
                              f'got {epochs!r}.')
        plan += [item['stage']] * epochs
    return plan, pushes


@HOOKS.register_module()
class ProtoPNetStages(Hook):
    """Run ProtoPNet's stages by epoch (see the module docstring).

    Args:
        stages: list of ``dict(stage='warm'|'joint'|'last_layer', epochs=N)`` and ``dict(stage='push')``.
        push_dataloader: dataloader config of the push images (training images with the test pipeline, not
            shuffled); ``None``: the config's ``train_dataloader`` with the ``test_dataloader``'s pipeline.
        joint_lr_step, joint_lr_gamma: step decay of the backbone, add-on and prototype learning rates over the
            joint epochs (``None``: constant rates).
        progress: show a progress bar during the push.
    """

    priority = 'NORMAL'  # after_train_epoch: the push runs before CheckpointHook (VERY_LOW) saves the epoch

    def __init__(self, stages: Sequence[dict], push_dataloader: dict | None = None, joint_lr_step: int | None = None,
                 joint_lr_gamma: float = 0.1, progress: bool = False) -> None:
        self.plan, self.pushes = parse_stages(stages)
        if joint_lr_step is not None and (isinstance(joint_lr_step, bool) or not isinstance(joint_lr_step, int)
                                          or joint_lr_step < 1):
            raise ConfigError(f'ProtoPNetStages: joint_lr_step must be a positive integer or None, got '
                              f'{joint_lr_step!r}.')
        if not 0 < float(joint_lr_gamma) <= 1:
            raise ConfigError(f'ProtoPNetStages: joint_lr_gamma must be in (0, 1], got {joint_lr_gamma!r}.')
        self.push_dataloader_cfg = push_dataloader
        self.joint_lr_step, self.joint_lr_gamma, self.progress = joint_lr_step, float(joint_lr_gamma), progress
        self._trainable: dict[int, bool] | None = None
        self._loader: Any = None
        self._stage: str | None = None
        self.last_push: Any = None

    # --- set-up ------------------------------------------------------------------------------------------------
    @staticmethod
    def _model(runner: Any) -> Any:
        from mmengine.model import is_model_wrapper

        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not all(hasattr(model, a) for a in ('prototype_vectors', 'add_on', 'last_layer', 'backbone')):
            raise ConfigError(f'ProtoPNetStages trains prototype networks (ProtoPNet); the model is a '
                              f'{type(model).__name__}. Remove the hook from custom_hooks.')
        return model

    @staticmethod
    def parts(model: Any) -> dict[str, list[Any]]:
        return {'backbone': list(model.backbone.parameters()), 'add_on': list(model.add_on.parameters()),
                'prototypes': [model.prototype_vectors], 'last_layer': list(model.last_layer.parameters())}

    def before_train(self, runner: Any) -> None:
        loop = runner.train_loop
        max_epochs = getattr(loop, 'max_epochs', None)
        if max_epochs is None:
            raise ConfigError('ProtoPNetStages needs an epoch-based train loop: set train_cfg = dict(by_epoch=True, '
                              f'max_epochs={len(self.plan)}).')
        if max_epochs != len(self.plan):
            raise ConfigError(f'ProtoPNetStages: the stages last {len(self.plan)} epochs but train_cfg.max_epochs is '
                              f'{max_epochs}; make them equal (--cfg-options train_cfg.max_epochs={len(self.plan)}).')
        model = self._model(runner)
        # what the model itself leaves trainable (freeze_until stays frozen in every stage)
        self._trainable = {id(p): p.requires_grad for p in model.parameters()}

    # --- per epoch ---------------------------------------------------------------------------------------------
    def stage_of(self, epoch: int) -> str:
        return self.plan[min(epoch, len(self.plan) - 1)]

    def before_train_epoch(self, runner: Any) -> None:
        model = self._model(runner)
        if self._trainable is None:
            self._trainable = {id(p): p.requires_grad for p in model.parameters()}
        epoch = runner.epoch
        stage = self.stage_of(epoch)
        train = EPOCH_STAGES[stage]
        for part, params in self.parts(model).items():
            for p in params:
                p.requires_grad_(part in train and self._trainable.get(id(p), True))
        if self.joint_lr_step is not None:
            self._set_lr(runner, model, stage, epoch)
        if stage != self._stage:
            runner.logger.info(f'ProtoPNet stage {stage!r} from epoch {epoch + 1} (training: {", ".join(train)}).')
            self._stage = stage

    def _set_lr(self, runner: Any, model: Any, stage: str, epoch: int) -> None:
        joint_done = sum(1 for s in self.plan[:epoch] if s == 'joint')
        factor = self.joint_lr_gamma ** (joint_done // self.joint_lr_step) if stage == 'joint' else 1.0
        owner = {id(p): part for part, params in self.parts(model).items() for p in params}
        optimizer = runner.optim_wrapper.optimizer
        for group in optimizer.param_groups:
            parts = {owner.get(id(p)) for p in group['params']} - {None}
            if 'last_layer' in parts and len(parts) > 1:
                raise ConfigError('ProtoPNetStages(joint_lr_step=...) needs the last layer in its own parameter '
                                  "group: add paramwise_cfg=dict(custom_keys={'last_layer': dict(lr_mult=...)}) to "
                                  'optim_wrapper.')
            if parts and 'last_layer' not in parts:
                base = group.setdefault('protopnet_base_lr', group['lr'])
                group['lr'] = base * factor

    def after_train_epoch(self, runner: Any) -> None:
        if runner.epoch in self.pushes:
            self.push(runner)

    # --- the push ----------------------------------------------------------------------------------------------
    def push_loader(self, runner: Any) -> Any:
        if self._loader is None:
            cfg = self.push_dataloader_cfg
            if cfg is None:
                cfg = copy.deepcopy(runner.cfg.get('train_dataloader'))
                test = runner.cfg.get('test_dataloader') or runner.cfg.get('val_dataloader') or {}
                if not cfg or not test.get('dataset'):
                    raise ConfigError('ProtoPNetStages: give push_dataloader (the training images with the test '
                                      'pipeline), or a config with train_dataloader and test_dataloader.')
                cfg['dataset']['pipeline'] = copy.deepcopy(test['dataset'].get('pipeline') or [])
                cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
            cfg = copy.deepcopy(dict(cfg))
            if not cfg.get('num_workers'):
                cfg['persistent_workers'] = False
            self._loader = runner.build_dataloader(cfg, seed=0)
        return self._loader

    def push(self, runner: Any) -> Any:
        """Push now (keeps the random generators' states); returns the :class:`~.push.PushReport`."""
        from zoo.engine.resume import capture_rng_state, restore_rng_state

        from .push import push_prototypes

        model = self._model(runner)
        state = capture_rng_state()
        try:
            report = push_prototypes(model, self.push_loader(runner), progress=self.progress)
        finally:
            restore_rng_state(state)
        self.last_push = report
        done = model.num_prototypes - len(report.unpushed)
        runner.logger.info(f'ProtoPNet push after epoch {runner.epoch + 1}: {done} prototypes projected onto '
                           f'training patches of their class ({report.images} images; '
                           f'largest prototype-to-patch distance {report.max_distance:.4g}).')
        if report.unpushed:
            runner.logger.warning(f'{len(report.unpushed)} prototypes were not pushed: the push data has no image of '
                                  f'their class (first: prototype {report.unpushed[0]}).')
        return report
