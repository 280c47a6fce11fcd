"""Random crop whose side is drawn from a fixed set (the protocol's
multi-scale crop)."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomSideCrop(BaseTransform):
    """Crop a (h, w) window with h, w drawn from ``sides`` at a random place.

    The protocol's train augmentation (docs/equations/protocol.md): after
    resizing to 512 x 512, crop a square whose side is drawn uniformly from
    {512, 448, 384, 320, 256}, then resize to 448. With ``max_distort > 0`` the
    height and width indices may differ by up to ``max_distort`` positions of
    ``sides`` (TSN-style multi-scale crop); ``max_distort=0`` gives squares.
    Sides larger than the image are clipped to it.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    Added key: ``crop_bbox`` (x1, y1, x2, y2).

    Args:
        sides (Sequence[int]): Candidate sides in pixels.
            Defaults to (512, 448, 384, 320, 256).
        max_distort (int): Largest index difference between the height side
            and the width side. Defaults to 0 (square crops).
    """

    def __init__(self, sides: Sequence[int] = (512, 448, 384, 320, 256),
                 max_distort: int = 0) -> None:
        if not sides or any(int(s) <= 0 for s in sides):
            raise ValueError(f'RandomSideCrop: sides must be positive, got '
                             f'{sides}')
        if max_distort < 0:
            raise ValueError('RandomSideCrop: max_distort must be >= 0, got '
                             f'{max_distort}')
        self.sides = [int(s) for s in sides]
        self.max_distort = int(max_distort)
        self.pairs = [(h, w) for i, h in enumerate(self.sides)
                      for j, w in enumerate(self.sides)
                      if abs(i - j) <= self.max_distort]

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        H, W = img.shape[:2]
        h, w = self.pairs[np.random.randint(len(self.pairs))]
        h, w = min(h, H), min(w, W)
        y = np.random.randint(H - h + 1)
        x = np.random.randint(W - w + 1)
        results['img'] = img[y:y + h, x:x + w]
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = np.array([x, y, x + w, y + h])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(sides={self.sides}, '
                f'max_distort={self.max_distort})')
