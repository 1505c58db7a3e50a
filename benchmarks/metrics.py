#!/usr/bin/env python
"""Batched insertion + deletion vs a per-image loop: wall-time ratio, measured side by side in one run.

    python benchmarks/metrics.py [--model resnet18] [--images 64] [--size 224] [--step 7168] [--batch-size 64]
        [--threads N] [--device cpu|cuda] [--group 8]

Both sides compute the same numbers on the same model, images and maps (checked at the end):

* batched: ``zoo.metrics.Insertion`` and ``Deletion`` — all (image, step) pairs in forward passes of
  ``--batch-size`` images;
* per-image loop: RISE's ``CausalMetric.single_run`` structure in torch — for each image, one forward pass for its
  class, then one forward pass of that single image per step, switching ``step`` pixels in between.

The two sides run interleaved, group by group of ``--group`` images, alternating which goes first, so that a load
change on a shared machine hits both alike. The ratio is batched ÷ loop (target ≤ 0.1). It is a property of the
device: a GPU runs one image almost as fast as a batch, so batching wins by orders of magnitude there; on a CPU a
large model is compute-bound even at batch 1 and the gain is per-call overhead and thread utilisation. The default
``--step`` (32 image widths, 8 evaluations per image) keeps a CPU run to minutes; both sides scale linearly with
the number of steps, so the ratio barely depends on it (RISE uses one image width per step: ``--step 224``).
It finally prints the device floor: the bare model's time per image at ``--batch-size`` ÷ at batch 1.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from zoo.metrics import Deletion, Insertion, gaussian_blur  # noqa: E402


def per_image_curve(model: torch.nn.Module, image: torch.Tensor, saliency: torch.Tensor, mode: str, step: int,
                    substrate: torch.Tensor) -> torch.Tensor:
    """One image, one forward pass per step (RISE ``single_run``): the probability curve of the predicted class."""
    c, h, w = image.shape
    hw = h * w
    cls = int(model(image[None]).argmax(1))
    n = math.ceil(hw / step)
    order = torch.sort(saliency.flatten(), descending=True, stable=True).indices
    start, finish = (image.clone(), substrate) if mode == 'deletion' else (substrate.clone(), image)
    start, finish = start.view(c, hw), finish.view(c, hw)
    scores = torch.empty(n + 1)
    for i in range(n + 1):
        scores[i] = model(start.view(1, c, h, w)).softmax(1)[0, cls]
        if i < n:
            idx = order[step * i:step * (i + 1)]
            start[:, idx] = finish[:, idx]
    return scores


def forward_floor(model: torch.nn.Module, images: torch.Tensor, batch_size: int, sync: Any) -> float:
    """Time per image of the bare model at ``batch_size`` ÷ at batch 1 (same images, best of 2 rounds)."""
    def per_image(bs: int) -> float:
        best = math.inf
        for _ in range(2):
            sync()
            t = time.perf_counter()
            with torch.no_grad():
                for lo in range(0, len(images), bs):
                    model(images[lo:lo + bs])
            sync()
            best = min(best, time.perf_counter() - t)
        return best / len(images)

    return per_image(batch_size) / per_image(1)


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='resnet18', help='timm model name (random init)')
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--step', type=int, default=224 * 32, help='pixels per step (RISE: 224)')
    p.add_argument('--batch-size', type=int, default=64, help='images per forward pass on the batched side')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--group', type=int, default=8, help='images per interleaved timing group')
    args = p.parse_args(argv)
    import timm

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=1000).eval().to(device)
    images = torch.randn(args.images, 3, args.size, args.size, device=device)
    low = torch.rand(args.images, 1, 7, 7, device=device)
    maps = F.interpolate(low, size=(args.size, args.size), mode='bilinear', align_corners=False)[:, 0]
    n = math.ceil(args.size * args.size / args.step)
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible'
    print(f'{args.model} (random init), {args.images} images {args.size}x{args.size}, {args.step} px per step = '
          f'{n} steps, {n + 1} evaluations per image and metric; device: {where}')

    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize()

    ins, dele = Insertion(step=args.step, batch_size=args.batch_size), Deletion(step=args.step,
                                                                                batch_size=args.batch_size)
    blurred, zeros = gaussian_blur(images), torch.zeros_like(images)
    batched_s = loop_s = 0.0
    curves: dict[str, list[torch.Tensor]] = {'ins': [], 'del': [], 'loop_ins': [], 'loop_del': []}
    with torch.no_grad():
        model(images[:2])  # warm-up
        # Interleaved groups (alternating which side goes first) so that a load change on a shared machine hits
        # both sides alike; a group of g images is g * (n + 1) (image, step) pairs per metric on the batched side.
        for gi, lo in enumerate(range(0, args.images, args.group)):
            sl = slice(lo, lo + args.group)
            for side in (('batched', 'loop') if gi % 2 == 0 else ('loop', 'batched')):
                sync()
                t = time.perf_counter()
                if side == 'batched':
                    curves['ins'].append(ins(model, images[sl], maps[sl]).curve)
                    curves['del'].append(dele(model, images[sl], maps[sl]).curve)
                else:
                    for i in range(lo, min(lo + args.group, args.images)):
                        curves['loop_ins'].append(per_image_curve(model, images[i], maps[i], 'insertion',
                                                                  args.step, blurred[i]))
                        curves['loop_del'].append(per_image_curve(model, images[i], maps[i], 'deletion',
                                                                  args.step, zeros[i]))
                sync()
                elapsed = time.perf_counter() - t
                if side == 'batched':
                    batched_s += elapsed
                else:
                    loop_s += elapsed
            print(f'images {lo:3d}-{min(lo + args.group, args.images) - 1:3d}: batched {batched_s:8.2f} s, '
                  f'per-image loop {loop_s:8.2f} s (cumulative)', flush=True)
    r_ins, r_del = torch.cat(curves['ins']), torch.cat(curves['del'])
    loop_ins, loop_del = torch.stack(curves['loop_ins']), torch.stack(curves['loop_del'])
    print(f'batched:        {batched_s:8.2f} s  ({args.images * (n + 1) * 2} images in forward passes of up to '
          f'{args.batch_size})')
    print(f'per-image loop: {loop_s:8.2f} s  ({args.images * (n + 2) * 2} forward passes of one image)')
    diff = max(float((r_ins - loop_ins).abs().max()), float((r_del - loop_del).abs().max()))
    ratio = batched_s / loop_s
    print(f'same curves: max |batched - loop| = {diff:.2e}')
    print(f'ratio batched / per-image loop = {ratio:.3f} (target <= 0.1)')
    floor = forward_floor(model, images, args.batch_size, sync)
    print(f'device floor: plain forward passes, batch {args.batch_size} / batch 1 time per image = {floor:.3f} '
          '(no batched metric can do much better than this on this device)')
    if diff > 1e-3:
        raise SystemExit('the batched and per-image curves differ: the benchmark compares different things')
    return ratio


if __name__ == '__main__':
    main()
