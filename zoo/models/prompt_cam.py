"""``PromptCAMViT``: Prompt-CAM (Chowdhury et al., CVPR 2025) — a frozen timm ViT made interpretable with one
learnable prompt per class.

A frozen pre-trained vision transformer gets ``C`` class-specific prompt tokens at **every** block ("deep" visual
prompt tuning): before block ``i`` the prompts of block ``i`` are put in front of the tokens, and after the block
their outputs are dropped (block ``i + 1`` brings its own). The last block's prompt outputs ``z_c`` score the
classes through the ViT's final LayerNorm and **one shared** ``Linear(D, 1)``:
``logit_c = wᵀ LN(z_c) + b``. Only the prompts and that head train (cross-entropy).

The explanation is the last block's attention from the prompt of the explained class to the patch tokens, one map
per head (:meth:`PromptCAMViT.prompt_attention`, read by the ``PromptCAM`` explainer); heads are ranked as
"traits" by blurring them greedily (``zoo.explainers.prompt_cam``), and ``explain(method='native')`` returns the
top traits as a :class:`TraitsExplanation` whose figure draws them beside the image.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='PromptCAMViT', num_classes=3,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_vit', img_size=32)))
    >>> tuple(model(torch.randn(2, 3, 32, 32)).shape), tuple(model.prompts.shape)
    ((2, 3), (6, 3, 64))
    >>> [n for n, p in model.named_parameters() if p.requires_grad]
    ['prompts', 'head.weight', 'head.bias']
    >>> tuple(model.prompt_attention(torch.randn(2, 3, 32, 32), targets=1)['attention'].shape)
    (2, 2, 2, 2)
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from registry import BACKBONES, MODELS
from registry.errors import CheckpointError, ConfigError

from ..structures import DataSample, stack_field
from .contract import ZooModel
from .explanation import Explanation
from .input_stats import TimmInputMixin

PROMPT_CAM_PAPER = {
    'title': 'Prompt-CAM: Making Vision Transformers Interpretable for Fine-Grained Analysis',
    'authors': 'Arpita Chowdhury et al.', 'venue': 'CVPR 2025', 'arxiv': '2501.09333',
    'url': 'https://arxiv.org/abs/2501.09333',
    'bibtex': '@inproceedings{chowdhury2025promptcam,\n  title     = {Prompt-{CAM}: Making Vision Transformers '
              'Interpretable for Fine-Grained Analysis},\n  author    = {Chowdhury, Arpita and Paul, Dipanjyoti and '
              'Mai, Zheda and Gu, Jianyang and Zhang, Ziheng and Mehrab, Kazi Sajeed and Campolongo, Elizabeth G. '
              'and Rubenstein, Daniel and Stewart, Charles V. and Karpatne, Anuj and Berger-Wolf, Tanya and Su, Yu '
              'and Chao, Wei-Lun},\n  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and '
              'Pattern Recognition (CVPR)},\n  pages     = {4375--4385},\n  year      = {2025},\n'
              '  eprint    = {2501.09333},\n  archivePrefix = {arXiv}\n}'}
PROMPT_INITS = ('xavier_uniform', 'normal')


def check_vit(vit: nn.Module, name: str) -> None:
    """Raise :class:`ConfigError` unless ``vit`` is a timm ``VisionTransformer`` made of standard pre-norm
    ``Block``\\ s with standard ``Attention`` (what Prompt-CAM's per-head attention is read from)."""
    from timm.layers import Attention
    from timm.models.vision_transformer import Block, VisionTransformer

    if not isinstance(vit, VisionTransformer):
        raise ConfigError(f'PromptCAMViT needs a timm VisionTransformer (vit_*, deit_*, DINO/DINOv2 ViTs); '
                          f'{name!r} builds a {type(vit).__name__}. Pick a ViT, e.g. '
                          "model_name='vit_base_patch16_224.dino'.")
    for i, block in enumerate(vit.blocks):
        if type(block) is not Block or type(block.attn) is not Attention:
            raise ConfigError(f'PromptCAMViT reads attention from timm pre-norm Blocks with standard Attention; '
                              f'block {i} of {name!r} is a {type(block).__name__} with '
                              f'{type(getattr(block, "attn", None)).__name__}. Pick a plain ViT.')


@MODELS.register_module()
class PromptCAMViT(TimmInputMixin, ZooModel, BaseModel):
    """Prompt-CAM: class-specific prompts at every block of a frozen timm ViT and a shared one-unit head.

    Args:
        backbone: config of a ``TimmBackbone`` naming a timm ViT (``model_name``, ``pretrained``, ``img_size``,
            ``drop_path_rate``, ``dynamic_img_size``, ...). It is frozen: no parameter of it trains.
        num_classes: ``C``, the number of classes = prompts per block.
        prompt_dropout: dropout on the prompts (one mask per block, shared by the batch, as the official code).
        prompt_init: ``'xavier_uniform'`` (paper/code: ``U(-v, v)``, ``v = sqrt(6 / (3 * patch_h * patch_w + D))``)
            or ``'normal'`` (``N(0, 0.02²)``).
        backbone_train_mode: ``True`` (official code): in training the frozen ViT is in train mode too, so its
            dropout and drop-path (``drop_path_rate``) act; ``False`` keeps it in eval mode (frozen as in a
            feature extractor).
        backbone_checkpoint: training only: a checkpoint of a zoo ``ImageClassifier`` (``.pth`` or
            ``.safetensors``) whose ``backbone.*`` weights the ViT takes at build time, strictly (what the
            embedded two-stage recipe uses). Never exported: an export carries all weights.
        data_preprocessor: config (``MODELS``); mean/std default to the ViT's timm preprocessing config.
        class_names: the classes in label order (set from the dataset by ``ClassNamesHook`` when ``None``).
        init_cfg: mmengine weight-init config.
    """

    training_only = ('backbone_checkpoint',)
    component_args = {'backbone': 'BACKBONES', 'data_preprocessor': 'MODELS'}
    default_explainer = 'promptcam'
    native_explanation = 'traits'

    def __init__(self, backbone: dict, num_classes: int, prompt_dropout: float = 0.1,
                 prompt_init: str = 'xavier_uniform', backbone_train_mode: bool = True,
                 backbone_checkpoint: str | None = None, data_preprocessor: dict | None = None,
                 class_names: Sequence[str] | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f'PromptCAMViT: num_classes must be a positive integer, got {num_classes!r}.')
        if prompt_init not in PROMPT_INITS:
            raise ConfigError(f'PromptCAMViT: prompt_init must be one of {PROMPT_INITS}, got {prompt_init!r}.')
        if not 0 <= float(prompt_dropout) < 1:
            raise ConfigError(f'PromptCAMViT: prompt_dropout must be in [0, 1), got {prompt_dropout!r}.')
        self.backbone = BACKBONES.build(backbone) if isinstance(backbone, dict) else backbone
        vit = getattr(self.backbone, 'model', None)
        check_vit(vit, getattr(self.backbone, 'model_name', type(self.backbone).__name__))
        if backbone_checkpoint:
            load_backbone_checkpoint(self.backbone, backbone_checkpoint)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone_train_mode = bool(backbone_train_mode)
        depth, dim = len(vit.blocks), int(vit.embed_dim)
        self.prompts = nn.Parameter(torch.zeros(depth, num_classes, dim))
        self.prompt_dropout = nn.Dropout(float(prompt_dropout))
        self.prompt_init = prompt_init
        self.reset_prompts()
        self.head = nn.Linear(dim, 1)
        pre_cfg = dict(type='ClsDataPreprocessor') if data_preprocessor is None else dict(data_preprocessor)
        self.data_preprocessor = MODELS.build(pre_cfg)
        if not getattr(self.data_preprocessor, 'mean_std_set', True):
            cfg = self.backbone.pretrained_cfg
            self.data_preprocessor.set_mean_std([255 * m for m in cfg.get('mean', (0.485, 0.456, 0.406))],
                                                [255 * s for s in cfg.get('std', (0.229, 0.224, 0.225))])
        if class_names is not None:
            self.class_names = list(class_names)

    def reset_prompts(self) -> None:
        """Initialise the prompts as ``prompt_init`` says (the paper's xavier-uniform by default)."""
        with torch.no_grad():
            if self.prompt_init == 'normal':
                nn.init.normal_(self.prompts, std=0.02)
            else:
                ph, pw = self.patch_size
                val = math.sqrt(6.0 / float(3 * ph * pw + self.prompts.shape[-1]))
                nn.init.uniform_(self.prompts, -val, val)

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def vit(self) -> nn.Module:
        """The frozen timm ``VisionTransformer``."""
        return self.backbone.model

    @property
    def num_classes(self) -> int:
        return int(self.prompts.shape[1])

    @property
    def num_heads(self) -> int:
        """Attention heads of the last block (= the number of trait maps)."""
        return int(self.vit.blocks[-1].attn.num_heads)

    @property
    def patch_size(self) -> tuple[int, int]:
        ph, pw = self.vit.patch_embed.patch_size
        return int(ph), int(pw)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches in every block: the ``C`` prompts, then the ViT's class/register tokens."""
        return self.num_classes + int(self.vit.num_prefix_tokens)

    @property
    def explain_meta(self) -> dict[str, Any]:
        """What explainers read: Grad-CAM & co. target the last block's ``norm1`` (its tokens are the prompts,
        the ViT's prefix tokens, then the patch grid)."""
        return {'target_layer': f'backbone.model.blocks.{len(self.vit.blocks) - 1}.norm1',
                'patch_size': self.patch_size, 'num_prefix_tokens': self.num_prefix_tokens,
                'output_fmt': 'NCHW', 'class_names': self.class_names}

    def timm_pretrained_cfg(self) -> dict[str, Any]:
        """The ViT's timm ``pretrained_cfg`` at its own input size."""
        cfg = dict(self.backbone.pretrained_cfg)
        size = getattr(self.vit.patch_embed, 'img_size', None)
        if size is not None:
            cfg['input_size'] = (3, int(size[0]), int(size[1]))
        return cfg

    @classmethod
    def method_info(cls, model_cfg: Any) -> dict[str, Any]:
        return {'method': 'promptcam', 'tags': ['prompt-cam', 'visual-prompt-tuning', 'vision-transformer',
                                                'interpretable'], 'paper': dict(PROMPT_CAM_PAPER)}

    def train(self, mode: bool = True) -> PromptCAMViT:
        super().train(mode)
        if mode and not self.backbone_train_mode:
            self.backbone.eval()
        return self

    # --- the network ------------------------------------------------------------------------------------------
    def _embed(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Patch embedding, class/register tokens and position embedding (timm's own steps); the patch grid."""
        vit = self.vit
        x = vit.patch_embed(images)
        grid = (int(x.shape[1]), int(x.shape[2])) if x.ndim == 4 else tuple(int(g) for g in
                                                                            vit.patch_embed.grid_size)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
        return x, grid

    def _with_prompts(self, index: int, x: Tensor) -> Tensor:
        prompts = self.prompt_dropout(self.prompts[index]).to(x.dtype)
        return torch.cat([prompts.expand(x.shape[0], -1, -1), x], dim=1)

    def _to_last_block(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The input of the last block (its prompts in front) and the patch grid."""
        x, grid = self._embed(images)
        blocks = self.vit.blocks
        for i in range(len(blocks) - 1):
            x = blocks[i](self._with_prompts(i, x))[:, self.num_classes:]
        return self._with_prompts(len(blocks) - 1, x), grid

    def _class_logits(self, z: Tensor) -> Tensor:
        """``wᵀ LN(z_c) + b`` for prompt outputs ``z`` ``[..., C, D]`` → ``[..., C]``."""
        vit = self.vit
        norm = vit.norm if not isinstance(vit.norm, nn.Identity) else vit.fc_norm
        return self.head(norm(z)).squeeze(-1)

    def prompt_features(self, images: Tensor) -> Tensor:
        """``z``: the last block's outputs of the ``C`` prompts, ``[B, C, D]`` (before the final norm)."""
        x, _ = self._to_last_block(images)
        return self.vit.blocks[-1](x)[:, :self.num_classes]

    def _last_block_rows(self, x: Tensor, rows: Tensor, blur: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The last block for the query tokens ``rows`` only, with attention computed explicitly.

        Args:
            x: the last block's input ``[B, N, D]``.
            rows: query token indices ``[B, R]`` (prompts are tokens ``0..C-1``).
            blur: bool ``[B, R, heads]``: heads whose pre-softmax attention logits of that query row are set to
                0 (uniform attention over all tokens), or ``None``.

        Returns:
            ``(out [B, R, D], probabilities [B, heads, R, N])``.
        """
        block = self.vit.blocks[-1]
        attn = block.attn
        b, n, _ = x.shape
        heads, head_dim = attn.num_heads, attn.head_dim
        h = block.norm1(x)
        qkv = attn.qkv(h).reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        index = rows[:, None, :, None].expand(b, heads, rows.shape[1], head_dim)
        q = q.gather(2, index)  # [B, heads, R, hd]
        logits = (q * attn.scale) @ k.transpose(-2, -1)  # [B, heads, R, N]
        if blur is not None:
            keep = ~blur.to(torch.bool).permute(0, 2, 1)[..., None]  # [B, heads, R, 1]
            logits = logits * keep
        probs = logits.softmax(-1)
        out = (attn.attn_drop(probs) @ v).transpose(1, 2).reshape(b, rows.shape[1], heads * head_dim)
        out = getattr(attn, 'norm', nn.Identity())(out)
        gate = getattr(attn, 'gate', None)
        if gate is not None:
            out = out * gate(h.gather(1, rows[..., None].expand(-1, -1, h.shape[-1]))).sigmoid()
        out = attn.proj_drop(attn.proj(out))
        y = x.gather(1, rows[..., None].expand(-1, -1, x.shape[-1])) + block.drop_path1(block.ls1(out))
        y = y + block.drop_path2(block.ls2(block.mlp(block.norm2(y))))
        return y, probs

    def prompt_attention(self, images: Tensor, targets: Any = None, blur: Tensor | None = None) -> dict[str, Any]:
        """The last block's attention of the target class's prompt over the patch tokens, per head.

        This is what the ``PromptCAM`` explainer reads (explainers never import model classes).

        Args:
            images: normalised ``[B, 3, H, W]`` (any size the ViT accepts).
            targets: ``None`` (the predicted class), one class index, or one per image.
            blur: bool ``[B, heads]`` or ``[B, S, heads]`` (``S`` variants per image): heads whose pre-softmax
                attention logits for the target prompt's query row are set to 0 before the softmax (the
                paper's "blurring"); every other prompt row is untouched.

        Returns:
            ``{'attention': [B, heads, h, w] (or [B, S, heads, h, w]) probabilities over the patches,
            'logits': [B, C] (or [B, S, C]), 'targets': [B] long, 'grid': (h, w)}``; ``logits`` and
            ``targets`` are those of the blurred model, the predicted class is that of the unblurred one.
        """
        from zoo.ops.tensors import targets_or_predicted

        x, grid = self._to_last_block(images)
        b, c = x.shape[0], self.num_classes
        prompt_rows = torch.arange(c, device=x.device).expand(b, c)
        z, probs = self._last_block_rows(x, prompt_rows)
        logits = self._class_logits(z)
        t = targets_or_predicted(targets, logits.detach())
        patches = slice(self.num_prefix_tokens, None)
        heads = self.num_heads
        if blur is None:
            att = probs[torch.arange(b, device=x.device), :, t][..., patches]  # [B, heads, N]
            return {'attention': att.reshape(b, heads, *grid), 'logits': logits, 'targets': t, 'grid': grid}
        blur = blur.to(device=x.device, dtype=torch.bool)
        single = blur.ndim == 2
        blur = blur[:, None] if single else blur
        if blur.ndim != 3 or blur.shape[0] != b or blur.shape[2] != heads:
            raise ConfigError(f'blur must be bool [B, heads] or [B, S, heads] with B={b} and heads={heads}, got '
                              f'shape {tuple(blur.shape)}.')
        s = blur.shape[1]
        rows = t[:, None].expand(b, s)
        z_t, probs_t = self._last_block_rows(x, rows, blur)  # [B, S, D], [B, heads, S, N]
        logits_s = logits[:, None].repeat(1, s, 1)
        logits_s.scatter_(2, rows[..., None], self._class_logits(z_t)[..., None])
        att = probs_t[..., patches].permute(0, 2, 1, 3).reshape(b, s, heads, *grid)
        if single:
            return {'attention': att[:, 0], 'logits': logits_s[:, 0], 'targets': t, 'grid': grid}
        return {'attention': att, 'logits': logits_s, 'targets': t, 'grid': grid}

    # --- mmengine protocol ------------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, data_samples: list[DataSample] | None = None, mode: str = 'tensor') -> Any:
        if mode == 'tensor':
            return self._class_logits(self.prompt_features(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: list[DataSample]) -> dict[str, Tensor]:
        labels = stack_field(data_samples or [], 'gt_label')
        if labels is None:
            raise ValueError('Training needs gt_label in every data sample.')
        labels = labels.to(inputs.device).reshape(-1)
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f'Label {int(labels.max())} is out of range for {self.num_classes} class prompts: the '
                              'dataset and model.num_classes disagree.')
        return {'loss_cls': F.cross_entropy(self(inputs), labels)}

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list[DataSample] | None = None) -> list[DataSample]:
        scores = self(inputs).softmax(-1)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(scores))]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        return samples

    # --- the family's own explanation -------------------------------------------------------------------------
    def explain_native(self, images: Any, targets: Any = None, top_traits: int = 4, **kwargs: Any) -> Explanation:
        """The top ``top_traits`` heads ("traits") of the explained class, ranked by greedy head blurring, with
        their attention maps: a :class:`TraitsExplanation`. Its ``maps`` equal
        ``explain(images, method='promptcam', top_traits=top_traits)``; its ``head_maps`` are the top heads' maps,
        each scaled to [0, 1]. ``kwargs`` go to the ``PromptCAM`` explainer (``normalize``, ``resize``)."""
        from zoo.explainers import build_explainer

        x = self.prepare(images)
        post = build_explainer('promptcam', **kwargs)
        ranking = build_explainer('promptcam', normalize=False, resize=False).rank_traits(
            self, x, self.resolve_targets(targets))
        k = max(1, min(int(top_traits), ranking.order.shape[1]))
        top = ranking.order[:, :k]
        raw = ranking.maps.gather(1, top[:, :, None, None].expand(-1, -1, *ranking.maps.shape[-2:]))
        size = tuple(x.shape[-2:])
        head_maps = post.postprocess(raw.flatten(0, 1), size)
        head_maps = head_maps.reshape(len(x), k, *head_maps.shape[-2:])
        names = self.class_names
        records = []
        for i in range(len(x)):
            t = int(ranking.targets[i])
            records.append({
                'class': t, 'class_name': names[t] if names else str(t),
                'probability': float(ranking.probability[i]),
                'traits': [{'rank': r + 1, 'head': int(h),
                            'probability_without': float(ranking.probability_without[i, r])}
                           for r, h in enumerate(top[i].tolist())],
                'ranking': [int(h) for h in ranking.order[i].tolist()]})
        return TraitsExplanation('traits', [int(t) for t in ranking.targets.tolist()], records,
                                 post.postprocess(raw.mean(1), size).cpu(), head_maps=head_maps.cpu())


@dataclass
class TraitsExplanation(Explanation):
    """Prompt-CAM's traits: per image the top-k heads of the explained class and their attention maps.

    ``records[i]``: ``class``, ``class_name``, ``probability`` (unblurred), ``traits`` (``rank``, ``head``,
    ``probability_without``: the class probability once this head and every less important one are blurred),
    ``ranking`` (all heads, most important first). ``head_maps``: ``[B, k, H, W]`` in rank order.
    """

    head_maps: Tensor | None = None

    def figure(self, index: int, image: Tensor | None = None, class_names: Sequence[str] | None = None,
               fig: Any = None) -> Any:
        """The image, then the top-k trait maps over it, left to right by rank (``fig``: a matplotlib ``Figure``
        or ``SubFigure`` to draw into, e.g. one row of a larger figure; a new figure by default)."""
        from matplotlib.figure import Figure

        from zoo.viz.overlay import overlay, to_display

        record = self.records[index]
        maps = self.head_maps[index] if self.head_maps is not None else self.maps[index][None]
        panels = len(maps) + (image is not None)
        if fig is None:
            fig = Figure(figsize=(2.0 * panels, 2.4), layout='constrained')
        axes = fig.subplots(1, panels, squeeze=False)[0]
        start = 0
        if image is not None:
            axes[0].imshow(to_display(image).permute(1, 2, 0).numpy())
            axes[0].set_title(f"{record['class_name']}\np = {record['probability']:.2f}", fontsize=9)
            start = 1
        for j, trait in enumerate(record['traits'][:len(maps)]):
            base = image if image is not None else torch.zeros(3, *maps[j].shape)
            axes[start + j].imshow(overlay(base, maps[j]).permute(1, 2, 0).numpy())
            axes[start + j].set_title(f"trait {trait['rank']}: head {trait['head']}", fontsize=9)
        for ax in axes:
            ax.axis('off')
        return fig


def load_backbone_checkpoint(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load the ``backbone.*`` weights of a zoo classifier checkpoint into ``backbone``, strictly.

    Reads ``.safetensors`` files, and ``.pth`` checkpoints the user trained (a training config is trusted code;
    this argument never reaches an export).
    """
    from .weights import check_state_dict_fits, read_state_dict

    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise CheckpointError(f'backbone_checkpoint {path!r} does not exist. Train the classifier first (the '
                              'recipe names its checkpoint), or pass the path of its epoch_N.pth.')
    state, _ = read_state_dict(path, trust_pickle=True)
    prefix = 'backbone.'
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        raise CheckpointError(f'{path!r} holds no backbone.* weights (found e.g. {sorted(state)[:3]}); it must be a '
                              'checkpoint of a zoo ImageClassifier with a TimmBackbone.')
    state = check_state_dict_fits(backbone, picked, path)
    backbone.load_state_dict(state, strict=True)
