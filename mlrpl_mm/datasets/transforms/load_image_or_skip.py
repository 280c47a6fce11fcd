"""Image loading that names the unreadable file, or skips it on request."""
import os
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFileOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` with a clear error, or an opt-in skip.

    A missing, empty, truncated or otherwise undecodable image raises an
    ``OSError`` naming the file, the data field (``img_path``) and the sample
    index. With ``skip_unreadable=True`` the transform instead logs a warning
    naming the file and the running count of skipped images of this process
    (each dataloader worker counts its own), and returns ``None``: mmengine's
    datasets and :class:`~mlrpl_mm.datasets.PartialLabelDataset` then draw
    another training sample (their ``max_refetch``); a test-mode dataset
    raises, so evaluation never silently drops images.

    Skipping changes the effective training set; prefer fixing the data
    (``check_images=True`` on our datasets lists missing files up front).

    Args:
        skip_unreadable (bool): Skip instead of raising. Defaults to False.
        **kwargs: Arguments of mmcv's ``LoadImageFromFile`` (``to_float32``,
            ``color_type``, ``imdecode_backend``, ``backend_args``...).
            ``ignore_empty`` is not accepted (use ``skip_unreadable``).
    """

    def __init__(self, skip_unreadable: bool = False, **kwargs) -> None:
        if 'ignore_empty' in kwargs:
            raise ValueError('LoadImageFromFileOrSkip: use skip_unreadable '
                             'instead of ignore_empty')
        super().__init__(ignore_empty=False, **kwargs)
        self.skip_unreadable = skip_unreadable
        self.num_skipped = 0

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            out = super().transform(results)
        except Exception as err:  # missing, unreadable, undecodable (assert)
            reason = f'{type(err).__name__}: {err}'
            if not os.path.exists(path):
                reason = 'file not found'
            elif os.path.isfile(path) and os.path.getsize(path) == 0:
                reason = f'zero-byte file ({reason})'
            if not self.skip_unreadable:
                raise OSError(
                    f'cannot read image {path!r} (field img_path of sample '
                    f'{results.get("sample_idx", "?")}): {reason}. Fix or '
                    'remove the file, or set skip_unreadable=True in the '
                    'LoadImageFromFileOrSkip transform of the training '
                    'pipeline to skip such images.') from err
            self.num_skipped += 1
            print_log(f'LoadImageFromFileOrSkip: skipped unreadable image '
                      f'{path!r} ({reason}); {self.num_skipped} image(s) '
                      'skipped so far in this process', logger='current',
                      level=30)
            return None
        return out
