"""tools/deploy/export_onnx.py: the ONNX scores of partial BCE, HST and DSRB
equal PyTorch's within 1e-4 on demo images (onnxruntime), with a batch size
other than the export's."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

from .conftest import ROOT

# onnx / onnxruntime come with the tests extra (pip install -e '.[tests]')


def _export_main():
    spec = importlib.util.spec_from_file_location(
        'export_onnx', osp.join(ROOT, 'tools', 'deploy', 'export_onnx.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize('name', ['pbce_demo_lite', 'hst_demo_lite',
                                  'dsrb_demo_lite'])
def test_onnx_scores_equal_pytorch(name, demo_data, tmp_path, capsys):
    from mlrpl_mm.apis import MultiLabelInferencer, list_images
    from mlrpl_mm.apis.onnx_export import onnx_scores, pipeline_inputs
    cfg = osp.join(ROOT, 'configs', f'{name}.py')
    torch.manual_seed(0)
    inf = MultiLabelInferencer(cfg, None)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=inf.model.state_dict()), ckpt)
    out = str(tmp_path / 'model.onnx')
    val = osp.join(demo_data, 'val2014')
    _export_main()([cfg, ckpt, '--out', out, '--check', val,
                    '--max-images', '7', '--check-batch', '3'])
    text = capsys.readouterr().out
    assert 'onnxruntime vs PyTorch on 7 images' in text
    # independently: onnxruntime on other images, batch of 5
    paths = list_images(val)[7:12]
    inf = MultiLabelInferencer(cfg, ckpt)
    ref = inf.predict_scores(paths)
    got = onnx_scores(out, pipeline_inputs(inf, paths))
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert np.ptp(ref, axis=0).max() > 1e-4   # the images are told apart
    if name == 'pbce_demo_lite':
        # a tolerance the export cannot meet is an error, not a pass
        with pytest.raises(SystemExit, match='ONNX scores differ'):
            _export_main()([cfg, ckpt, '--out', out, '--check', val,
                            '--max-images', '4', '--atol', '-1'])
