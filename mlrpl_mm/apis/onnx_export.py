"""Export the inference model (class scores) of a trained classifier to ONNX.

The exported graph is the data preprocessor + backbone + neck + head +
score activation: input ``img`` (B, 3, H, W) float32, the images after the
config's test pipeline (resized, BGR, 0..255, as ``PackInputs`` gives them);
output ``scores`` (B, C), the head's ``pred_score`` (sigmoid of the logits,
or the raw scores for ``score_activation='none'``). Batch size is dynamic;
H, W are those of the export (the test pipeline's size).
"""
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn


class ScoreModel(nn.Module):
    """``img`` (B, 3, H, W) BGR 0..255 -> ``pred_score`` (B, C) of an
    mmpretrain ``ImageClassifier`` with an mlrpl-mm head."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        pre = model.data_preprocessor
        # ClsDataPreprocessor: to_rgb; mmengine's ImgDataPreprocessor:
        # _channel_conversion
        self.to_rgb = bool(getattr(pre, 'to_rgb', getattr(
            pre, '_channel_conversion', False)))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone().float())
            self.register_buffer('std', pre.std.detach().clone().float())
        self.sigmoid = getattr(model.head, 'score_activation',
                               'sigmoid') == 'sigmoid'

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float()
        if self.to_rgb:
            x = x.flip(1)
        if self.normalize:
            x = (x - self.mean) / self.std
        logits = self.model.head(self.model.extract_feat(x))
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        return torch.sigmoid(logits) if self.sigmoid else logits


def pipeline_inputs(inferencer, img_paths: Sequence[str]) -> np.ndarray:
    """(N, 3, H, W) float32 ONNX inputs of images through the config's test
    pipeline (all images must come out at one size)."""
    arrs = [np.asarray(inferencer._load(p)['inputs'], np.float32)
            for p in img_paths]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise ValueError(f'the test pipeline gives images of several sizes '
                         f'{sorted(shapes)}; the ONNX model takes one size '
                         '(resize to a fixed scale in the test pipeline)')
    return np.stack(arrs)


def export_onnx(inferencer, out: str, example: np.ndarray,
                opset: int = 17) -> ScoreModel:
    """Export :class:`ScoreModel` of ``inferencer.model`` to ``out`` with
    the example input (B, 3, H, W) (the TorchScript-based exporter)."""
    wrapper = ScoreModel(inferencer.model).eval()
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (torch.as_tensor(example), ), out, dynamo=False,
            input_names=['img'], output_names=['scores'],
            dynamic_axes=dict(img={0: 'batch'}, scores={0: 'batch'}),
            opset_version=opset)
    return wrapper


def onnx_scores(path: str, inputs: np.ndarray,
                batch_size: Optional[int] = None) -> np.ndarray:
    """(N, C) scores of an exported model with onnxruntime (CPU)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    bs = batch_size or len(inputs)
    return np.concatenate([
        sess.run(['scores'], dict(img=inputs[i:i + bs]))[0]
        for i in range(0, len(inputs), bs)])
