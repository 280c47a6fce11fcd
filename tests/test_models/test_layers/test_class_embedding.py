import numpy as np
import pytest
import torch

import mlrpl_mm  # noqa: F401
from mmpretrain.registry import MODELS


def test_npy_embedding(tmp_path):
    arr = np.random.RandomState(0).randn(4, 6).astype(np.float32)
    path = tmp_path / 'emb.npy'
    np.save(path, arr)
    m = MODELS.build(dict(type='NpyClassEmbedding', path=str(path), num_classes=4))
    assert m.embed_dims == 6 and m.num_classes == 4
    np.testing.assert_array_equal(m().numpy(), arr)
    assert 'embedding' in m.state_dict()
    with pytest.raises(ValueError, match=r'emb\.npy.*5'):
        MODELS.build(dict(type='NpyClassEmbedding', path=str(path), num_classes=5))
    with pytest.raises(FileNotFoundError, match='missing.npy'):
        MODELS.build(dict(type='NpyClassEmbedding', path=str(tmp_path / 'missing.npy')))
    np.save(tmp_path / 'bad.npy', np.zeros(3))
    with pytest.raises(ValueError, match=r'bad\.npy'):
        MODELS.build(dict(type='NpyClassEmbedding', path=str(tmp_path / 'bad.npy')))


def test_learnable_embedding():
    m = MODELS.build(dict(type='LearnableClassEmbedding', num_classes=3, embed_dims=5))
    assert m().shape == (3, 5) and m().requires_grad
    m = MODELS.build(dict(type='LearnableClassEmbedding', num_classes=3,
                          embed_dims=5, requires_grad=False))
    assert not m().requires_grad


def test_clip_embedding_offline(tmp_path):
    m = MODELS.build(dict(type='CLIPClassEmbedding', class_names=['cat', 'dog', 'car'],
                          model_name='ViT-B-16', pretrained=None,
                          cache_dir=str(tmp_path)))
    e = m()
    assert e.shape == (3, 512) and not e.requires_grad
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert not any(p.requires_grad for p in m.parameters())
    assert 'embedding' in m.state_dict()
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='CLIPClassEmbedding', class_names=['a'], num_classes=2))


def test_clip_embedding_uses_quick_gelu_for_openai_weights(monkeypatch,
                                                           tmp_path):
    """OpenAI weights were trained with QuickGELU: CLIPClassEmbedding makes
    the choice of SigRL's label embeddings (and of the image tower), the
    '-quickgelu' config of the same weights; before it ran them with GELU."""
    import open_clip
    import torch.nn as nn
    from open_clip.transformer import QuickGELU

    from mlrpl_mm.models.utils.clip_text import build_label_embed
    real = open_clip.create_model
    calls, acts = [], []

    def no_download(name, pretrained=None, force_quick_gelu=False, **kw):
        # a tiny tower with the activation open_clip would build
        calls.append((name, pretrained, force_quick_gelu))
        model = real('mlrpl-tiny-vit', pretrained=None, force_quick_gelu=(
            force_quick_gelu or name.endswith('-quickgelu')))
        acts.append({type(m) for m in model.modules()
                     if isinstance(m, (QuickGELU, nn.GELU))})
        return model

    monkeypatch.setattr(open_clip, 'create_model', no_download)
    names = ['cat', 'dog']
    m = MODELS.build(dict(type='CLIPClassEmbedding', class_names=names,
                          model_name='ViT-B-16', pretrained='openai',
                          cache_dir=str(tmp_path / 'a')))
    assert calls[-1] == ('ViT-B-16-quickgelu', 'openai', False)
    assert acts[-1] == {QuickGELU}
    assert m().shape == (2, 64)
    build_label_embed(names, None, dict(model_name='ViT-B-16',
                                        pretrained='openai',
                                        cache_dir=str(tmp_path / 'b')))
    assert calls[-2] == calls[-1] and acts[-1] == {QuickGELU}
    # other weights keep the config's GELU; quick_gelu=False forces GELU
    MODELS.build(dict(type='CLIPClassEmbedding', class_names=names,
                      model_name='ViT-B-16', pretrained='laion2b_s34b_b88k',
                      cache_dir=str(tmp_path / 'a')))
    assert calls[-1] == ('ViT-B-16', 'laion2b_s34b_b88k', False)
    assert acts[-1] == {nn.GELU}
    MODELS.build(dict(type='CLIPClassEmbedding', class_names=names,
                      model_name='ViT-B-16', pretrained='openai',
                      quick_gelu=False, cache_dir=str(tmp_path / 'a')))
    assert calls[-1] == ('ViT-B-16', 'openai', False)
    assert acts[-1] == {nn.GELU}

