"""Run a causal (CLIP) text transformer with a prefix shared by many prompts computed only once.

In a causal transformer a position only attends to itself and earlier positions, so the start token and a context
shared by every class produce the same hidden states for every prompt. :func:`shared_prefix_forward` runs that
prefix once per variant, keeps its keys and values per layer, and runs only the class-specific suffix (class name,
period, end token) for each prompt, attending to the cached prefix keys/values. The result equals running the full
sequences (checked in the tests) at a fraction of the cost.

Example:
    >>> supports_prefix_sharing(tower.transformer)   # doctest: +SKIP
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def supports_prefix_sharing(transformer: nn.Module) -> bool:
    """True for open_clip ``Transformer`` stacks of standard ``ResidualAttentionBlock`` s (batch-first)."""
    from open_clip.transformer import ResidualAttentionBlock

    blocks = getattr(transformer, 'resblocks', None)
    return bool(blocks) and getattr(transformer, 'batch_first', False) and all(
        type(b) is ResidualAttentionBlock and not hasattr(b, 'ln_1_kv') and b.attn.batch_first
        and b.attn._qkv_same_embed_dim for b in blocks)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[N, S, W]`` -> ``[N, heads, S, W / heads]``."""
    n, s, w = x.shape
    return x.view(n, s, n_heads, w // n_heads).transpose(1, 2)


def _kv(block: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = block.attn.embed_dim
    weight, bias = block.attn.in_proj_weight, block.attn.in_proj_bias
    k = F.linear(h, weight[w:2 * w], None if bias is None else bias[w:2 * w])
    v = F.linear(h, weight[2 * w:], None if bias is None else bias[2 * w:])
    return k, v


def _suffix_block(block: nn.Module, x: torch.Tensor, k_pre: torch.Tensor, v_pre: torch.Tensor,
                  groups: int) -> torch.Tensor:
    """One residual block for suffix tokens ``x [V*K, S, W]`` attending to prefix keys/values ``[V, P, W]``."""
    attn = block.attn
    w, n_heads = attn.embed_dim, attn.num_heads
    h = block.ln_1(x)
    bias = attn.in_proj_bias
    q = F.linear(h, attn.in_proj_weight[:w], None if bias is None else bias[:w])
    k_suf, v_suf = _kv(block, h)
    n, s, _ = x.shape
    p = k_pre.shape[1]
    k_pre = k_pre.repeat_interleave(n // groups, dim=0)
    v_pre = v_pre.repeat_interleave(n // groups, dim=0)
    k = torch.cat([k_pre, k_suf], dim=1)
    v = torch.cat([v_pre, v_suf], dim=1)
    # suffix position i sees every prefix position and suffix positions <= i
    allowed = torch.ones(s, p + s, dtype=torch.bool, device=x.device)
    allowed[:, p:] = torch.tril(torch.ones(s, s, dtype=torch.bool, device=x.device))
    out = F.scaled_dot_product_attention(_heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads),
                                         attn_mask=allowed)
    out = attn.out_proj(out.transpose(1, 2).reshape(n, s, w))
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def shared_prefix_forward(transformer: nn.Module, x: torch.Tensor, prefix_len: int,
                          causal_mask: torch.Tensor) -> torch.Tensor:
    """Hidden states ``[V, K, L, W]`` of inputs ``x [V, K, L, W]`` whose first ``prefix_len`` positions are equal
    across ``K``.

    Args:
        transformer: an open_clip ``Transformer`` (see :func:`supports_prefix_sharing`).
        x: token + positional embeddings.
        prefix_len: shared leading positions (``x[:, k, :prefix_len]`` identical for every ``k``).
        causal_mask: the tower's additive causal mask (at least ``prefix_len`` square).
    """
    n_var, n_cls, length, width = x.shape
    pre = x[:, 0, :prefix_len]
    suf = x[:, :, prefix_len:].reshape(n_var * n_cls, length - prefix_len, width)
    pre_mask = causal_mask[:prefix_len, :prefix_len]
    for block in transformer.resblocks:
        k_pre, v_pre = _kv(block, block.ln_1(pre))
        if suf.shape[1]:
            suf = _suffix_block(block, suf, k_pre, v_pre, n_var)
        pre = block(pre, attn_mask=pre_mask)
    pre = pre[:, None].expand(n_var, n_cls, prefix_len, width)
    return torch.cat([pre, suf.view(n_var, n_cls, length - prefix_len, width)], dim=2)
