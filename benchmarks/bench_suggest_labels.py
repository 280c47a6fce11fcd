#!/usr/bin/env python
"""Does annotating the entries tools/suggest_labels.py suggests raise mAP
more than annotating as many random unknown entries?

Cheap protocol (``--mode cheap``, seconds per mask): the demo dataset
(``tools/data/make_demo_dataset.py``), a known-proportion mask of the training
labels, and a small fixed model retrained in closed form each round: a linear
classifier applied to each of the 4 cells of a mosaic (8x8 grey pixels),
max-pooled over the cells, trained with partial BCE (L-BFGS with a
strong-Wolfe line search, from a small fixed random start; ``--model cell``)
or a convex model (``--model features``: partial-BCE logistic regression on
fixed random ReLU features of the cells, max-pooled over the cells; one
optimum, so retraining after a round adds no noise of its own). The ranking is the
tool's (``mlrpl_mm.apis.suggest.rank_unknown_entries``, ``--strategy`` /
``--balance``, the tool's defaults unless given); the oracle answers the K entries from the
hidden full labels; the model is retrained and the val mAP (sklearn AP over
all val labels) compared with K random unknown entries, over several random
seeds and several masks (mask seeds ``--first-mask`` ...). ``--rounds R``: the
K entries in R rounds of about K / R, the model retrained and the entries
re-ranked between rounds.

Network protocol (``--mode network``, minutes per training): the real path
of docs/own_data.md: configs/pbce_own_data.py trained by tools/train.py on
the own-data example, tools/suggest_labels.py (``--strategy`` or random) with
``--oracle``, ``--merge``, retraining from scratch, tools/test.py.

    python benchmarks/bench_suggest_labels.py --mode cheap
    python benchmarks/bench_suggest_labels.py --model features --budget 100 \
        --first-mask 100 --masks 30
    python benchmarks/bench_suggest_labels.py --mode network --num-train 600
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_demo(out, num_train, num_val):
    """tools/data/make_demo_dataset.py's make_demo_dataset (seed 0)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_demo_dataset', osp.join(ROOT, 'tools', 'data',
                                      'make_demo_dataset.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_demo_dataset(out, num_train, num_val, seed=0)


def load_demo_arrays(root: str, split: str):
    """(N, 4, 64) float32 cell features (8x8 grey pixels of each 32x32 cell,
    standardised later) and (N, 10) int8 labels of a demo split."""
    from PIL import Image
    with open(osp.join(root, 'annotations',
                       f'instances_{split}2014.json')) as f:
        data = json.load(f)
    rows = {im['id']: i for i, im in enumerate(data['images'])}
    labels = -np.ones((len(rows), 10), np.int8)
    for a in data['annotations']:
        labels[rows[a['image_id']], a['category_id'] - 1] = 1
    feats = np.stack([
        np.asarray(Image.open(osp.join(root, f'{split}2014', im['file_name']))
                   .convert('L').resize((16, 16)), np.float32)
        .reshape(2, 8, 2, 8).transpose(0, 2, 1, 3).reshape(4, 64) / 255
        for im in data['images']])
    return feats, labels


def fit_cell_model(x: np.ndarray, partial: np.ndarray, iters: int = 150):
    """Partial-BCE fit of score_c = max_cell (x_cell . w_c) + b_c; returns
    the probability function of features."""
    import torch
    x = torch.as_tensor(x)
    t = torch.as_tensor(partial == 1, dtype=torch.float32)
    m = torch.as_tensor(partial != 0, dtype=torch.float32)
    # small fixed random start: from w = 0 all cells tie in the max and
    # L-BFGS with a line search can stop at the constant model
    w = (1e-2 * torch.randn(x.shape[-1], t.shape[1], generator=torch.Generator(
        ).manual_seed(0))).requires_grad_()
    b = torch.zeros(t.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        z = (x @ w).max(1).values + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            z, t, reduction='none') * m).sum() / m.sum().clamp(min=1) + \
            1e-2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: torch.sigmoid(
        (torch.as_tensor(z) @ w).max(1).values + b).numpy()


def random_cell_features(x: np.ndarray, width: int = 256,
                         seed: int = 0) -> np.ndarray:
    """(N, width) fixed random ReLU features of the cells, max-pooled over
    the cells: :math:`f_h = \\max_{cell} \\max(0, x_{cell} \\cdot P_h + q_h)`
    with :math:`P \\sim N(0, 1 / D)`, :math:`q \\sim N(0, 1 / 4)` (seeded);
    ``x`` is (N, cells, D)."""
    g = np.random.RandomState(seed)
    proj = (g.randn(x.shape[-1], width) / np.sqrt(x.shape[-1])).astype(
        np.float32)
    bias = (0.5 * g.randn(width)).astype(np.float32)
    return np.maximum(x @ proj + bias, 0).max(1)


def fit_linear_model(f: np.ndarray, partial: np.ndarray, lam: float = 1e-2,
                     iters: int = 300):
    """Partial-BCE logistic regression score_c = f . w_c + b_c with an L2
    penalty ``lam * |w|^2`` on (N, H) features: convex, one optimum (from
    w = 0, L-BFGS with a strong-Wolfe line search); returns the probability
    function of features."""
    import torch
    x = torch.as_tensor(f)
    t = torch.as_tensor(partial == 1, dtype=torch.float32)
    m = torch.as_tensor(partial != 0, dtype=torch.float32)
    w = torch.zeros(x.shape[1], t.shape[1], requires_grad=True)
    b = torch.zeros(t.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters,
                            line_search_fn='strong_wolfe',
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            x @ w + b, t, reduction='none') * m).sum() / m.sum().clamp(
                min=1) + lam * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: torch.sigmoid(torch.as_tensor(z) @ w + b).numpy()


def cheap_arrays(data: str, model: str = 'cell'):
    """(xtr, ytr, xva, yva) of the demo data at ``data`` for a cheap model:
    standardised cell pixels (``'cell'``, (N, 4, 64)) or standardised
    random cell features (``'features'``, (N, 256))."""
    xtr, ytr = load_demo_arrays(data, 'train')
    xva, yva = load_demo_arrays(data, 'val')
    xtr, xva = standardise(xtr, xva)
    if model == 'features':
        ftr, fva = random_cell_features(xtr), random_cell_features(xva)
        mu, sd = ftr.mean(0), ftr.std(0) + 1e-3
        xtr, xva = ((ftr - mu) / sd).astype(np.float32), (
            (fva - mu) / sd).astype(np.float32)
    elif model != 'cell':
        raise ValueError(f"model must be 'cell' or 'features', got {model!r}")
    return xtr, ytr, xva, yva


CHEAP_MODELS = dict(cell=fit_cell_model, features=fit_linear_model)


def mean_ap(scores, labels) -> float:
    from sklearn.metrics import average_precision_score
    return 100 * float(np.mean([
        average_precision_score(labels[:, c] == 1, scores[:, c])
        for c in range(labels.shape[1])]))


def cheap_gain(xtr, ytr, xva, yva, known: float, budget: int,
               mask_seed: int, random_seeds, balance: str = 'none',
               strategy: str = 'uncertainty', fit=None,
               rounds: int = 1) -> dict:
    """One mask: val mAP before, after the suggested K (in ``rounds``
    rounds, re-ranked by the retrained model between them), after K random
    entries (per seed, one round). ``fit``: the cheap model's training
    function (:func:`fit_cell_model` when None)."""
    from mlrpl_mm.apis.suggest import rank_unknown_entries
    fit = fit or fit_cell_model
    rng = np.random.RandomState(mask_seed)
    partial = np.where(rng.random_sample(ytr.shape) < known, ytr,
                       0).astype(np.int8)
    model = fit(xtr, partial)
    base = mean_ap(model(xva), yva)
    scores = model(xtr)

    def answer(p, entries):
        p = p.copy()
        p[entries[:, 0], entries[:, 1]] = ytr[entries[:, 0], entries[:, 1]]
        return p

    p, s = partial, scores
    for r in range(rounds):
        k = budget // rounds + (r < budget % rounds)
        p = answer(p, rank_unknown_entries(s, p, k, strategy=strategy,
                                           balance=balance)[0])
        suggested = fit(xtr, p)
        s = suggested(xtr)
    rand = [mean_ap(fit(xtr, answer(partial, rank_unknown_entries(
        scores, partial, budget, strategy='random', seed=s)[0]))(xva), yva)
            for s in random_seeds]
    return dict(mask_seed=mask_seed, base=base,
                suggested=mean_ap(suggested(xva), yva),
                annotated=int((p != partial).sum()),
                new_positives=int(((p != partial) & (ytr == 1)).sum()),
                random=rand, random_mean=float(np.mean(rand)),
                random_std=float(np.std(rand)))


def paired_summary(rows) -> dict:
    """suggested - mean of the random runs over the masks: mean, std
    (ddof 1), paired t-statistic mean / (std / sqrt(n)), masks ahead."""
    d = np.array([r['suggested'] - r['random_mean'] for r in rows])
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return dict(mean=float(d.mean()), std=sd, n=len(d),
                t=float(d.mean() / (sd / np.sqrt(len(d)))) if sd else 0.0,
                ahead=int((d > 0).sum()), min=float(d.min()))


def standardise(xtr, xva):
    mu, sd = xtr.mean((0, 1)), xtr.std((0, 1)) + 1e-3
    return (xtr - mu) / sd, (xva - mu) / sd


def run_cheap(args):
    make_demo(args.data, args.num_train, args.num_val)
    xtr, ytr, xva, yva = cheap_arrays(args.data, args.model)
    rows = []
    for ms in range(args.first_mask, args.first_mask + args.masks):
        t0 = time.time()
        r = cheap_gain(xtr, ytr, xva, yva, args.known, args.budget, ms,
                       range(args.seeds), args.balance, args.strategy,
                       CHEAP_MODELS[args.model], args.rounds)
        rows.append(r)
        print(f"mask {ms}: base {r['base']:.2f}  suggested "
              f"{r['suggested']:.2f}  random {r['random_mean']:.2f} +- "
              f"{r['random_std']:.2f} (min {min(r['random']):.2f}, max "
              f"{max(r['random']):.2f})  [{time.time() - t0:.1f} s]",
              flush=True)
    sm = paired_summary(rows)
    print(f'suggested - random (mean over {args.seeds} seeds), over '
          f"{sm['n']} masks: {sm['mean']:+.2f} +- {sm['std']:.2f} (min "
          f"{sm['min']:+.2f}), paired t {sm['t']:+.2f}, ahead on "
          f"{sm['ahead']}/{sm['n']}; suggested > every random run in "
          f"{sum(r['suggested'] > max(r['random']) for r in rows)}/"
          f'{len(rows)} masks')
    return rows


def _run(cmd):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS=os.environ.get(
        'OMP_NUM_THREADS', '1'))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(' '.join(cmd) + '\n' + proc.stdout[-3000:] +
                           proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def run_network(args):
    py = sys.executable
    work = args.work_dir
    own = osp.join(work, 'own')
    make_demo(args.data, args.num_train, args.num_val)
    _run([py, 'tools/data/make_own_data_demo.py', '--demo-root', args.data,
          '--out', own, '--known-ratio', str(args.known)])
    for src, dst, extra in (('known_labels.csv', 'train.json',
                             ['--add-images', 'train/*.jpg']),
                            ('test_labels.csv', 'test.json', [])):
        _run([py, 'tools/data/convert_labels.py', '--format', 'csv', '--src',
              osp.join(own, src), '--classes', osp.join(own, 'classes.txt'),
              '--image-root', osp.join(own, 'images'), '--out',
              osp.join(own, dst), '--quiet'] + extra)
    opts = [f'{k}.dataset.data_root={own}' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')] + [
                f'train_cfg.max_epochs={args.epochs}',
                f'param_scheduler.milestones=[{args.epochs - 1}]',
                f'train_cfg.val_interval={args.epochs}',
                f'train_dataloader.num_workers={args.workers}',
                f'val_dataloader.num_workers={args.workers}',
                f'test_dataloader.num_workers={args.workers}']

    def train_test(name, ann):
        wd = osp.join(work, name)
        _run([py, 'tools/train.py', 'configs/pbce_own_data.py', '--work-dir',
              wd, '--cfg-options', f'train_dataloader.dataset.ann_file={ann}'
              ] + opts)
        ckpt = osp.join(wd, f'epoch_{args.epochs}.pth')
        out = _run([py, 'tools/test.py', osp.join(wd, 'pbce_own_data.py'),
                    ckpt])
        m = re.findall(r'multi-label/mAP_voc: ([\d.]+)', out)
        return float(m[-1]), wd, ckpt

    t0 = time.time()
    base, wd, ckpt = train_test('base', 'train.json')
    print(f'base: {base:.2f} [{time.time() - t0:.0f} s]', flush=True)
    res = {}
    for strat, seed in [(args.strategy, 0)] + [('random', s)
                                                for s in range(args.seeds)]:
        tag = 'suggested' if strat != 'random' else f'random{seed}'
        csv_out = osp.join(work, f'{tag}.csv')
        _run([py, 'tools/suggest_labels.py', osp.join(wd, 'pbce_own_data.py'),
              ckpt, '--budget', str(args.budget), '--strategy', strat,
              '--balance', args.balance, '--seed', str(seed), '--oracle',
              osp.join(own, 'oracle_labels.csv'), '--out', csv_out])
        _run([py, 'tools/suggest_labels.py', osp.join(wd, 'pbce_own_data.py'),
              '--merge', csv_out, '--out', osp.join(own, f'train_{tag}.json')])
        res[tag] = train_test(tag, f'train_{tag}.json')[0]
        print(f'{tag}: {res[tag]:.2f} [{time.time() - t0:.0f} s]', flush=True)
    rand = [v for k, v in res.items() if k.startswith('random')]
    print(f'network: base {base:.2f}, {args.strategy} '
          f"{res['suggested']:.2f}, "
          f'random {np.mean(rand):.2f} +- {np.std(rand):.2f} over '
          f'{len(rand)} seeds')
    return dict(base=base, **res)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mode', choices=['cheap', 'network'], default='cheap')
    p.add_argument('--data', default='work_dirs/bench_suggest/demo')
    p.add_argument('--work-dir', default='work_dirs/bench_suggest')
    p.add_argument('--num-train', type=int, default=300)
    p.add_argument('--num-val', type=int, default=200)
    p.add_argument('--known', type=float, default=0.1)
    p.add_argument('--budget', type=int, default=300)
    p.add_argument('--masks', type=int, default=5)
    p.add_argument('--first-mask', type=int, default=0,
                   help='the first mask seed (cheap mode)')
    p.add_argument('--model', choices=sorted(CHEAP_MODELS), default='cell',
                   help='the cheap model (see the module doc)')
    p.add_argument('--rounds', type=int, default=1,
                   help='annotation rounds of the suggested K (cheap mode)')
    p.add_argument('--seeds', type=int, default=10)
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--workers', type=int, default=2)
    from mlrpl_mm.apis.suggest import DEFAULT_BALANCE, DEFAULT_STRATEGY
    p.add_argument('--balance', choices=['none', 'class'],
                   default=DEFAULT_BALANCE)
    p.add_argument('--strategy', default=DEFAULT_STRATEGY,
                   help='the strategy of the suggested K')
    args = p.parse_args(argv)
    return run_cheap(args) if args.mode == 'cheap' else run_network(args)


if __name__ == '__main__':
    main()
