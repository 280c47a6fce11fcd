"""`make install` picks the torch wheels (issue 18, item 2), checked with
`make -n` (nothing is installed) and with an unreachable index."""
import os
import os.path as osp
import re
import subprocess
import sys

from .conftest import ROOT

CPU_INDEX = 'https://download.pytorch.org/whl/cpu'


def _make(args, tmp_path, gpu: bool):
    """Run make with a stand-in `nvidia-smi` first on PATH (exit 0 = GPU)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / 'nvidia-smi'
    fake.write_text(f'#!/bin/sh\nexit {0 if gpu else 1}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    env.pop('TORCH_INDEX', None)
    env.pop('MAKEFLAGS', None)
    proc = subprocess.run(['make', '--no-print-directory', '-C', ROOT] + args,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _torch_pins():
    with open(osp.join(ROOT, 'Makefile')) as f:
        text = f.read()
    torch = re.search(r'^TORCH_VERSION \?= (\S+)', text, re.M).group(1)
    vision = re.search(r'^TORCHVISION_VERSION \?= (\S+)', text, re.M).group(1)
    return torch, vision


def test_no_gpu_installs_tested_cpu_wheels(tmp_path):
    out = _make(['-n', 'install', f'VENV={tmp_path}/venv'], tmp_path,
                gpu=False)
    torch, vision = _torch_pins()
    assert (f"pip install --quiet --index-url '{CPU_INDEX}' "
            f"'torch=={torch}' 'torchvision=={vision}'") in out, out
    # torch first, then the package (which then keeps that torch)
    assert out.index(CPU_INDEX) < out.index("install --quiet -e '.[lite,tests]'")


def test_gpu_or_override_uses_default_index(tmp_path):
    venv = osp.dirname(osp.dirname(sys.executable))
    out = _make(['-n', 'install', f'VENV={tmp_path}/venv'], tmp_path,
                gpu=True)
    assert CPU_INDEX not in out
    assert f"torch VENV={tmp_path}/venv TORCH_INDEX=''" in out
    # `make torch` with an empty index only reports (no network, no pip)
    out = _make(['torch', f'VENV={venv}'], tmp_path, gpu=True)
    assert out.strip() == 'torch: default index (NVIDIA GPU found)'
    out = _make(['torch', f'VENV={venv}', 'TORCH_INDEX='], tmp_path,
                gpu=False)
    assert out.strip() == 'torch: default index'


def test_unreachable_index_falls_back_to_default(tmp_path):
    """What CI here does (no route to PyTorch's index): a message, no
    install, exit 0, and `pip install -e .` then takes torch as before."""
    venv = osp.dirname(osp.dirname(sys.executable))
    out = _make(['torch', f'VENV={venv}',
                 'TORCH_INDEX=http://127.0.0.1:9/simple'], tmp_path, gpu=False)
    assert out.strip() == ('torch: http://127.0.0.1:9/simple not reachable, '
                           'default index')


def test_readme_states_the_pinned_versions():
    torch, vision = _torch_pins()
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    assert f'torch {torch} / torchvision {vision}' in readme
    assert f"--index-url {CPU_INDEX} 'torch=={torch}' " \
           f"'torchvision=={vision}'" in readme
