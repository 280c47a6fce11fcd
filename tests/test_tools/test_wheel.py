"""The wheel works without the repository (issue 18, item 1).

Builds the wheel from a copy of the source tree, installs it (``--no-deps``)
into a fresh venv outside the repo whose only other packages are the
current environment's site-packages (added by a ``.pth`` line, so torch is
not installed again and the editable ``mlrpl_mm`` finder of that
environment is *not* active), then trains a user config that inherits
``mlrpl_mm::hst_demo.py`` with the shipped ``.mim/tools/train.py``, and
runs the inference API on the packaged config name.
"""
import glob
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import pytest

from .conftest import ROOT

SOURCES = ('pyproject.toml', 'README.md', 'model-index.yml', 'mlrpl_mm',
           'configs', 'tools', 'docs')


def _run(args, cwd, env=None, timeout=300):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
        f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel built from a copy of the tree (no build/ left in the repo)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in SOURCES:
        path = osp.join(ROOT, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '--no-index', '-q', '-w', str(tmp / 'dist'),
          str(src)], cwd=str(tmp))
    wheels = glob.glob(str(tmp / 'dist' / 'mlrpl_mm-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_configs_tools_and_model_index(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        infos = {i.filename: i for i in zf.infolist()}
    mim = 'mlrpl_mm/.mim/'
    for cfg in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True):
        assert mim + osp.relpath(cfg, ROOT) in names, cfg
    for tool in ('train.py', 'test.py', 'infer.py', 'demo.py', 'sweep.py',
                 'dist_train.sh', 'analysis/plot_curves.py',
                 'data/make_demo_dataset.py'):
        assert mim + 'tools/' + tool in names, tool
    assert mim + 'model-index.yml' in names
    for meta in ('hst', 'dsrb', 'sigrl', 'baselines'):
        assert f'{mim}docs/{meta}/metafile.yml' in names
    # real files (the repo's symlinks are resolved), with their content
    info = infos[mim + 'configs/hst_demo.py']
    assert (info.external_attr >> 16) & 0o170000 != 0o120000
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read(mim + 'configs/hst_demo.py')
    with open(osp.join(ROOT, 'configs', 'hst_demo.py'), 'rb') as f:
        assert shipped == f.read()
    assert not any('__pycache__' in n for n in names)


@pytest.mark.slow
def test_installed_wheel_trains_packaged_config(wheel, demo_data, tmp_path):
    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)],
         cwd=str(tmp_path))
    py = str(venv / 'bin' / 'python')
    purelib = _run([py, '-c', 'import sysconfig; '
                    'print(sysconfig.get_paths()["purelib"])'],
                   cwd=str(tmp_path)).stdout.strip()
    # nothing of the checkout on the path (PYTHONPATH, the cwd)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env['OMP_NUM_THREADS'] = '1'
    _run([sys.executable, '-m', 'pip', '--python', py, 'install', '--no-deps',
          '--no-index', '-q', wheel], cwd=str(tmp_path), env=env)
    # then the current environment's packages (torch, mmpretrain, ...) as
    # plain sys.path entries after the venv's own: their .pth files (the
    # editable mlrpl_mm finder) are not run
    shared = [p for p in site.getsitepackages() if osp.isdir(p)]
    with open(osp.join(purelib, 'shared_env.pth'), 'w') as f:
        f.write('\n'.join(shared) + '\n')

    pkg = _run([py, '-c', 'import mlrpl_mm, os.path as o; '
                'print(o.dirname(mlrpl_mm.__file__))'],
               cwd=str(tmp_path), env=env).stdout.strip()
    assert pkg == osp.join(purelib, 'mlrpl_mm'), pkg  # not the checkout
    train = osp.join(pkg, '.mim', 'tools', 'train.py')
    assert osp.isfile(train) and not osp.islink(train)

    user_cfg = tmp_path / 'my_hst.py'
    user_cfg.write_text(textwrap.dedent(f"""
        _base_ = ['mlrpl_mm::hst_demo.py']
        model = dict(backbone=dict(base_channels=8, stem_channels=8),
                     head=dict(in_channels=64))
        train_dataloader = dict(batch_size=8, num_workers=0,
                                dataset=dict(dataset=dict(
                                    data_root={demo_data!r})))
        val_dataloader = dict(num_workers=0,
                              dataset=dict(data_root={demo_data!r}))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs=1, val_interval=1)
    """))
    work = tmp_path / 'work'
    proc = _run([py, train, str(user_cfg), '--work-dir', str(work)],
                cwd=str(tmp_path), env=env)
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file(), proc.stdout[-2000:]
    log = proc.stdout + proc.stderr
    assert 'multi-label/mAP' in log


def test_inference_api_takes_packaged_config_name():
    import numpy as np

    from mlrpl_mm.apis import MultiLabelInferencer
    from mlrpl_mm.utils.packaged_configs import packaged_config_dir
    for name in ('hst_demo', 'mlrpl_mm::hst_demo.py'):
        inf = MultiLabelInferencer(
            name, None, cfg_options={'model.backbone.base_channels': 8,
                                     'model.backbone.stem_channels': 8,
                                     'model.head.in_channels': 64})
        assert inf.cfg.filename == osp.join(packaged_config_dir(),
                                            'hst_demo.py')
        assert type(inf.model.head).__name__ == 'HSTHead'
        r = inf(np.zeros((64, 64, 3), np.uint8), topk=3)
        assert r[0]['pred_scores'].shape == (10,)
    with pytest.raises(FileNotFoundError, match='did you mean hst_demo.py'):
        MultiLabelInferencer('hst_dmeo', None)
