"""EMAPLLoss.update_pseudo_labels works on class-major copies (contiguous
per-class rows): the pseudo labels are exactly those of the per-column
loop it replaced, over several epochs."""
import torch

from mlrpl_mm.models.losses.spml_losses import EMAPLLoss


def _column_loop(mask, soft, probs, target, neg_proportion, denom):
    unknown = target == 0
    free = unknown & ~mask
    for k in range(probs.shape[1]):
        num = int(neg_proportion * int(unknown[:, k].sum()) / denom)
        cand = free[:, k].nonzero(as_tuple=True)[0]
        num = min(num, cand.numel())
        if num == 0:
            continue
        sel = cand[torch.argsort(probs[cand, k], stable=True)[:num]]
        mask[sel, k] = True
        soft[sel, k] = probs[sel, k]


def test_update_equals_the_per_column_loop():
    g = torch.Generator().manual_seed(0)
    n, c = 57, 9
    target = torch.randint(-1, 2, (n, c), generator=g)
    target[:, 3] = 0  # a class with every entry unknown
    loss = EMAPLLoss(warmup_epoch=2, neg_proportion=0.9)
    mask = torch.zeros(n, c, dtype=torch.bool)
    soft = torch.zeros(n, c)
    for epoch in range(1, 6):
        probs = torch.rand(n, c, generator=g)
        probs[:5] = 0.25  # ties: the stable order decides
        loss.update_pseudo_labels(probs, target, epoch, max_epochs=6)
        if epoch + 1 >= 2:
            _column_loop(mask, soft, probs, target, 0.9, 6 - 2)
        assert torch.equal(loss.pseudo_mask, mask)
        assert torch.equal(loss.pseudo_soft, soft)
    assert int(mask.sum()) > 0
