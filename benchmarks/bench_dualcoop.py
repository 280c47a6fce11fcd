#!/usr/bin/env python
"""One DualCoOp training step (forward + backward + SGD step) at 448 px.

The default case is a CPU-sized one: the tiny CLIP ResNet ``mlrpl-tiny-rn``
(random init, 64-d joint space, 2-layer text transformer) at 448 x 448,
i.e. a 14 x 14 map of 196 regions as CLIP RN101 at 448 px, with C = 80
class-specific prompt pairs of M = 16 contexts. ``--model RN101`` runs the
real towers (random init unless ``--pretrained``; a GPU is advised).

Reports the wall time of a step (minimum over ``--repeat``, after one
warm-up step), the process CPU time of that step, the trainable parameter
count and the number of prompts per text-transformer call.

Examples::

    python benchmarks/bench_dualcoop.py
    python benchmarks/bench_dualcoop.py --classes 80 200 --batch 4
    python benchmarks/bench_dualcoop.py --model RN101 --batch 32 --device cuda

To move this case into a generic ``benchmarks/bench_step.py`` later: its
``build(args)`` returns (model, optimizer, make_batch) for a config-free
DualCoOp model, and ``step(model, optim, batch)`` is one iteration; a
bench_step entry can call both with ``size=448``.
"""
import argparse
import json
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def build(args, num_classes):
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import mlrpl_mm  # noqa: F401
    init_default_scope('mmpretrain')
    clip = dict(model_name=args.model, pretrained=args.pretrained,
                fallback_to_random=False)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='OpenCLIPBackbone', trainable='none', **clip),
        neck=None,
        head=dict(type='DualCoOpHead', num_classes=num_classes,
                  class_names=[f'class {i}' for i in range(num_classes)],
                  prompt_learner=dict(type='DualPromptLearner',
                                      text_encoder=clip, n_ctx=16,
                                      class_specific=True,
                                      class_chunk=args.class_chunk))))
    model = model.to(args.device).train()
    optim = torch.optim.SGD([p for p in model.parameters()
                             if p.requires_grad], lr=0.002, momentum=0.9,
                            weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)

    def make_batch():
        x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
        target = torch.randint(-1, 2, (args.batch, num_classes),
                               generator=gen).float()
        samples = []
        for row in target:
            ds = DataSample()
            ds.set_field(row, 'partial_label')
            samples.append(ds)
        return x.to(args.device), samples

    return model, optim, make_batch


def step(model, optim, batch):
    x, samples = batch
    loss = model(x, samples, mode='loss')['loss_cls']
    optim.zero_grad()
    loss.backward()
    optim.step()
    return float(loss)


def run(args, num_classes):
    import torch
    model, optim, make_batch = build(args, num_classes)
    calls = []
    model.head.prompt_learner.text.transformer.register_forward_hook(
        lambda m, i, o: calls.append(i[0].shape[0]))
    step(model, optim, make_batch())             # warm-up
    times, cpus = [], []
    for _ in range(args.repeat):
        batch = make_batch()
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        step(model, optim, batch)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    i = min(range(len(times)), key=times.__getitem__)
    return dict(model=args.model, classes=num_classes, batch=args.batch,
                size=args.size, device=args.device,
                regions=(args.size // 32) ** 2,
                trainable_params=sum(p.numel() for p in model.parameters()
                                     if p.requires_grad),
                prompts_per_text_call=max(calls),
                step_s=round(times[i], 4), step_cpu_s=round(cpus[i], 4))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='mlrpl-tiny-rn')
    parser.add_argument('--pretrained', default=None)
    parser.add_argument('--classes', type=int, nargs='+', default=[80])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=448)
    parser.add_argument('--class-chunk', type=int, default=100)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    rows = [run(args, c) for c in args.classes]
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == '__main__':
    main()
