"""The CLIP text side (mlrpl_mm.models.utils.clip_text): QuickGELU for the
OpenAI weights, the label-embedding disk cache, no download at import."""
import os.path as osp
import subprocess
import sys

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from tests.sigrl_fixtures import ROOT
from tests.sigrl_fixtures import tiny_sigrl_head as _tiny_head


def test_quick_gelu_follows_the_openai_weights(monkeypatch, tmp_path):
    import open_clip
    from open_clip.transformer import QuickGELU

    from mlrpl_mm.models.utils.open_clip_factory import \
        resolve_quick_gelu
    assert resolve_quick_gelu('ViT-B-16', 'openai', None, 't') is True
    assert resolve_quick_gelu('ViT-B-16', 'laion2b_s34b_b88k', None,
                              't') is False
    assert resolve_quick_gelu('ViT-B-16', None, None, 't') is False
    assert resolve_quick_gelu('ViT-B-16', 'openai', False, 't') is False
    assert resolve_quick_gelu('ViT-B-16', None, True, 't') is True

    real = open_clip.create_model
    calls = []

    def no_download(name, pretrained=None, force_quick_gelu=False, **kw):
        # stands in for the real weights: a tiny tower with the activation
        # open_clip would build
        calls.append((name, pretrained, force_quick_gelu))
        quick = force_quick_gelu or name.endswith('-quickgelu')
        return real('mlrpl-tiny-vit', pretrained=None,
                    force_quick_gelu=quick)

    monkeypatch.setattr(open_clip, 'create_model', no_download)

    def acts(module):
        return {type(m) for m in module.modules()
                if isinstance(m, (QuickGELU, nn.GELU))}

    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                           pretrained='openai'))
    assert calls[-1] == ('ViT-B-16', 'openai', True)
    assert acts(bb.visual) == {QuickGELU}
    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                           pretrained='laion2b_s34b_b88k'))
    assert calls[-1][2] is False and acts(bb.visual) == {nn.GELU}
    # the text tower: the QuickGELU variant of the same weights, cached
    # under its own key (not the GELU network's)
    kw = dict(embed_dims=64,
              gmc=dict(type='SigRLGMC', in_channels=64, hidden_channels=16,
                       num_heads=2),
              svfr=dict(type='SigRLSVFR', embed_dims=64))
    enc = dict(model_name='ViT-B-16', pretrained='openai',
               cache_dir=str(tmp_path))
    h1 = _tiny_head(text_encoder=enc, **kw)
    assert calls[-1] == ('ViT-B-16-quickgelu', 'openai', False)
    h2 = _tiny_head(text_encoder=dict(enc, quick_gelu=False), **kw)
    assert calls[-1] == ('ViT-B-16', 'openai', False)
    assert not torch.allclose(h1.train_embed, h2.train_embed)
    cached = sorted(osp.basename(f) for f in tmp_path.iterdir())
    assert len(cached) == 2 and \
        sum(f.startswith('ViT-B-16-quickgelu-') for f in cached) == 1
    # a cached entry is used without building the tower again
    n = len(calls)
    h3 = _tiny_head(text_encoder=enc, **kw)
    assert len(calls) == n
    torch.testing.assert_close(h3.train_embed, h1.train_embed)


def test_label_embedding_cache_is_keyed_by_model_weights_template_names(
        monkeypatch, tmp_path):
    import open_clip

    from mlrpl_mm.models.utils.open_clip_factory import \
        register_open_clip_configs
    from mlrpl_mm.models.utils import DEFAULT_TEMPLATE, encode_class_names
    register_open_clip_configs()
    assert DEFAULT_TEMPLATE == 'There is a {} in the scene'
    real = open_clip.create_model
    built = []

    def fake(name, pretrained=None, **kw):      # no download
        built.append((name, pretrained))
        torch.manual_seed(len(built))
        return real('mlrpl-tiny-vit', pretrained=None)

    monkeypatch.setattr(open_clip, 'create_model', fake)

    def enc(**kw):
        args = dict(class_names=['cat', 'dog'], model_name='mlrpl-tiny-vit',
                    pretrained='tag', cache_dir=str(tmp_path))
        args.update(kw)
        return encode_class_names(**args)

    e1 = enc()
    assert len(built) == 1 and e1.shape == (2, 64)
    torch.testing.assert_close(e1.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(enc(), e1)          # from the disk cache
    torch.testing.assert_close(enc(template=DEFAULT_TEMPLATE), e1)
    assert len(built) == 1
    # each part of the key makes a new entry
    enc(template='a photo of a {}')
    enc(class_names=['cat', 'bird'])
    enc(pretrained='other')
    enc(model_name='ViT-B-16')
    assert len(built) == 5
    assert len(list(tmp_path.iterdir())) == 5
    # random weights (pretrained=None) are never cached
    enc(pretrained=None)
    enc(pretrained=None)
    assert len(built) == 7 and len(list(tmp_path.iterdir())) == 5


def test_label_embedding_cache_of_a_local_checkpoint_follows_the_file(
        monkeypatch, tmp_path):
    """A local checkpoint path is keyed by the file (size, mtime), not only
    by its name: replacing the file re-encodes instead of returning the old
    file's cached embeddings. Names registered by mlrpl_mm (the tiny model)
    work without calling register_open_clip_configs() first."""
    import os

    import open_clip

    from mlrpl_mm.models.utils import encode_class_names
    real = open_clip.create_model
    built = []

    def fake(name, pretrained=None, **kw):      # reads nothing from the file
        built.append((name, pretrained))
        torch.manual_seed(len(built))
        return real(name, pretrained=None)

    monkeypatch.setattr(open_clip, 'create_model', fake)
    # as in a fresh process: open_clip does not know the tiny model yet
    monkeypatch.delitem(open_clip.factory._MODEL_CONFIGS, 'mlrpl-tiny-vit',
                        raising=False)
    assert 'mlrpl-tiny-vit' not in open_clip.list_models()
    ckpt = tmp_path / 'weights.pt'
    ckpt.write_bytes(b'a' * 10)
    cache = tmp_path / 'cache'

    def enc():
        return encode_class_names(['cat', 'dog'], model_name='mlrpl-tiny-vit',
                                  pretrained=str(ckpt), cache_dir=str(cache))

    e1 = enc()
    torch.testing.assert_close(enc(), e1)           # same file: cached
    assert len(built) == 1
    ckpt.write_bytes(b'b' * 20)                     # replaced weights
    st = os.stat(ckpt)
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    e2 = enc()
    assert len(built) == 2 and len(list(cache.iterdir())) == 2
    assert not torch.allclose(e1, e2)


def test_nothing_is_downloaded_at_import_or_config_load():
    """Importing every mlrpl_mm module and loading the SigRL configs must not
    try to fetch weights (open_clip's download entry points raise)."""
    code = (
        'import importlib, pkgutil, glob\n'
        'import open_clip, open_clip.pretrained as op, open_clip.factory as of\n'
        'def boom(*a, **k): raise SystemExit("download attempted")\n'
        'op.download_pretrained = of.download_pretrained = boom\n'
        'op.download_pretrained_from_hf = boom\n'
        'import mlrpl_mm\n'
        'for m in pkgutil.walk_packages(mlrpl_mm.__path__, "mlrpl_mm."):\n'
        '    importlib.import_module(m.name)\n'
        'from mmengine.config import Config\n'
        'for f in glob.glob("configs/sigrl_*.py"): Config.fromfile(f)\n'
        'print("ok")\n')
    root = ROOT
    proc = subprocess.run([sys.executable, '-c', code], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', \
        proc.stdout[-2000:] + proc.stderr[-2000:]
