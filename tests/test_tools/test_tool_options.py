"""Tool options of issue 18 item 5: --data-root (and a top-level
``data_root=`` override), tools/test.py --show-dir / --interval, pred_label
of the heads, one-line errors of tools/infer.py, the bf16 autocast log line,
make_demo_dataset.py --help."""
import glob
import importlib.util
import os.path as osp
import shutil
import sys

import pytest
import torch
from mmengine.config import Config

from .conftest import ROOT, run_tool, tiny_options
from .tiny_run import tiny_run


def _tool(path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _roots(cfg):
    return (cfg.train_dataloader.dataset.dataset.data_root,
            cfg.val_dataloader.dataset.data_root,
            cfg.test_dataloader.dataset.data_root)


def test_train_data_root_option_and_top_level_override():
    train = _tool('tools/train.py', 'train_tool')
    cfg_file = osp.join(ROOT, 'configs', 'hst_demo.py')
    for argv in (['--data-root', '/x/coco'],
                 ['--cfg-options', 'data_root=/x/coco'],
                 ['--data-root', '/x/coco', '--cfg-options',
                  'data_root=/x/coco']):
        args = train.parse_args([cfg_file] + argv)
        cfg = train.merge_args(Config.fromfile(cfg_file), args)
        assert _roots(cfg) == ('/x/coco',) * 3, argv
        assert cfg.data_root == '/x/coco'
    # a dataset's own option still wins over --data-root
    args = train.parse_args([cfg_file, '--data-root', '/x/coco',
                             '--cfg-options',
                             'val_dataloader.dataset.data_root=/y'])
    cfg = train.merge_args(Config.fromfile(cfg_file), args)
    assert _roots(cfg) == ('/x/coco', '/y', '/x/coco')
    args = train.parse_args([cfg_file, '--data-root', '/a', '--cfg-options',
                             'data_root=/b'])
    with pytest.raises(ValueError, match='disagree'):
        train.merge_args(Config.fromfile(cfg_file), args)


def test_data_root_without_datasets_is_refused():
    from mlrpl_mm.apis import apply_data_root
    cfg = Config(dict(model=dict(type='X')))
    with pytest.raises(ValueError, match='no dataset of the config has a '
                       'data_root'):
        apply_data_root(cfg, '/x', None)


def test_heads_set_pred_label_at_threshold():
    from mmpretrain.registry import MODELS
    head = MODELS.build(dict(type='PartialLabelClsHead', num_classes=4,
                             in_channels=3))
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.copy_(torch.tensor([2.0, -2.0, 0.1, -0.1]))
    out = head.predict((torch.zeros(2, 3), ))
    assert out[0].pred_label.tolist() == [0, 2]  # sigmoid >= 0.5
    head.pred_thr = 0.9
    assert head.predict((torch.zeros(1, 3), ))[0].pred_label.tolist() == []
    raw = MODELS.build(dict(type='PartialLabelClsHead', num_classes=4,
                            in_channels=3, score_activation='none'))
    assert 'pred_label' not in raw.predict((torch.zeros(1, 3), ))[0]


@pytest.fixture(scope='module')
def run(tmp_path_factory, demo_data):
    return tiny_run(tmp_path_factory, demo_data)


def test_test_tool_data_root_and_show_dir(run, tmp_path):
    """tools/test.py on the original config (its data_root, data/demo, is
    not there in CI): --data-root points every dataset at the run's data;
    --show-dir draws every image (--interval 1) at 384 px under the work
    dir."""
    # into a copy of the training work dir, as tools/demo.py does
    work = str(tmp_path / 'test_work')
    shutil.copytree(run['work_dir'], work)
    opts = tiny_options('UNUSED', work, 1)
    opts = [o for o in opts if '.data_root=' not in o]
    proc = run_tool([sys.executable, 'tools/test.py', 'configs/pbce_demo.py',
                     run['checkpoint'], '--data-root', run['data_root'],
                     '--show-dir', 'vis', '--interval', '2'] + opts)
    log = proc.stdout + proc.stderr
    assert 'multi-label/mAP' in log
    pngs = sorted(glob.glob(osp.join(work, 'vis', '*.png')))
    num_val = len(glob.glob(osp.join(run['data_root'], 'val2014', '*.jpg')))
    assert len(pngs) == (num_val + 1) // 2, (len(pngs), num_val)
    import mmcv
    img = mmcv.imread(pngs[0])
    assert min(img.shape[:2]) == 384
    # the training run's log and scalars are still found (tools/demo.py,
    # plot_curves.py), not those of the newer test run
    demo = _tool('tools/demo.py', 'demo_tool')
    train_log, scalars = demo.training_log_paths(work)
    with open(train_log) as f:
        assert 'Epoch(train)' in f.read()
    with open(scalars) as f:
        assert '"loss"' in f.read()
    newest = sorted(glob.glob(osp.join(work, '*', '*.log')))[-1]
    assert newest != train_log and 'Epoch(train)' not in open(newest).read()


def test_infer_missing_files_one_line(run, tmp_path, capsys):
    cli = _tool('tools/infer.py', 'infer_tool')
    img = sorted(glob.glob(osp.join(run['data_root'], 'val2014', '*.jpg')))[0]
    for args, what in (
            (['configs/nope.py', run['checkpoint'], img],
             "config not found: 'configs/nope.py'"),
            ([run['config'], str(tmp_path / 'x.pth'), img],
             'checkpoint not found'),
            ([run['config'], run['checkpoint'], str(tmp_path / 'no.jpg')],
             'image not found')):
        with pytest.raises(SystemExit) as exc:
            cli.main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith('infer.py: error: ') \
            and what in lines[0], err


def test_cpu_autocast_logs_one_line(tmp_path):
    from mmengine.logging import MMLogger

    from mlrpl_mm.engine.optim_wrappers import CPUAutocastOptimWrapper
    log_file = str(tmp_path / 'amp.log')
    MMLogger.get_instance('cpu_autocast_test', log_file=log_file)
    model = torch.nn.Linear(2, 2)
    wrapper = CPUAutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        with wrapper.optim_context(model):
            y = model(torch.zeros(1, 2))
    assert y.dtype == torch.bfloat16
    with open(log_file) as f:
        text = f.read()
    assert text.count('bf16 autocast on CPU') == 1, text


def test_make_demo_dataset_help_describes_options():
    proc = run_tool([sys.executable, 'tools/data/make_demo_dataset.py',
                     '--help'], timeout=120)
    for opt in ('--out', '--num-train', '--num-val', '--seed',
                '--partner-prob', '--force'):
        assert opt in proc.stdout
    assert "digit's partner" in proc.stdout and '(default: 1500)' in proc.stdout
    parser = _tool('tools/data/make_demo_dataset.py', 'mdd').build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings

