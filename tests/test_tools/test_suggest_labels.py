"""mlrpl_mm.apis.suggest (tools/suggest_labels.py): ranking of the unknown
entries, pseudo-label votes of HST, merging the answers."""
import os.path as osp

import numpy as np
import pytest
import torch

from mlrpl_mm.apis.suggest import (DEFAULT_BALANCE, DEFAULT_STRATEGY,
                                   STRATEGIES, entry_priority, merge_answers,
                                   pseudo_label_votes, rank_unknown_entries)
from mlrpl_mm.datasets import (load_partial_annotations,
                               save_partial_annotations)

from .conftest import ROOT


def test_priority_is_uncertainty_plus_disagreement():
    s = np.array([[0.5, 0.9, 0.1, 0.7]])
    np.testing.assert_allclose(entry_priority(s), [[1, 0.2, 0.2, 0.6]])
    # votes of two branches: model votes (p > 0.5) = [0, 1, 0, 1]
    votes = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 1]]], bool)
    d = np.array([[2 / 3, 0, 0, 2 / 3]])      # 1 - |mean(2v - 1)|
    np.testing.assert_allclose(entry_priority(s, votes),
                               [[1, 0.2, 0.2, 0.6]] + d)
    with pytest.raises(ValueError, match='probabilities in'):
        entry_priority(np.array([[1.5]]))
    with pytest.raises(ValueError, match='votes have shape'):
        entry_priority(s, votes[:, :, :2])


def test_ranking_takes_unknown_entries_most_uncertain_first():
    scores = np.array([[0.5, 0.45, 0.99], [0.52, 0.1, 0.6]])
    partial = np.array([[1, 0, 0], [0, 0, -1]], np.int8)
    entries, pri = rank_unknown_entries(scores, partial, 3,
                                        strategy='uncertainty', balance='none')
    # (0, 0) is known: skipped although p = 0.5
    assert entries.tolist() == [[1, 0], [0, 1], [1, 1]]
    np.testing.assert_allclose(pri, [0.96, 0.9, 0.2])
    entries, _ = rank_unknown_entries(scores, partial, 10,
                                      strategy='uncertainty')
    assert len(entries) == 4          # only 4 unknown entries
    # class-balanced: the classes take turns (best of class 0, 1, 2, ...)
    entries, _ = rank_unknown_entries(scores, partial, 3,
                                      strategy='uncertainty', balance='class')
    assert entries.tolist() == [[1, 0], [0, 1], [0, 2]]
    r1, p1 = rank_unknown_entries(scores, partial, 2, strategy='random',
                                  seed=3)
    r2, _ = rank_unknown_entries(scores, partial, 2, strategy='random',
                                 seed=3)
    assert r1.tolist() == r2.tolist() and np.isnan(p1).all()
    assert all(partial[r, c] == 0 for r, c in r1)
    with pytest.raises(ValueError, match='budget must be >= 1'):
        rank_unknown_entries(scores, partial, 0, strategy='uncertainty')


def test_hst_pseudo_label_votes_match_its_branches(demo_data):
    from mmengine.dataset import pseudo_collate

    from mlrpl_mm.apis import MultiLabelInferencer, list_images
    from mlrpl_mm.models.heads.head_utils import last_feature
    torch.manual_seed(0)
    inf = MultiLabelInferencer(osp.join(ROOT, 'configs', 'hst_demo_lite.py'),
                               None)
    paths = list_images(osp.join(demo_data, 'val2014'))[:5]
    partial = np.zeros((5, 10), np.int8)
    partial[:, 0] = 1
    partial[1, 3] = 1
    with torch.no_grad():
        data = inf.model.data_preprocessor(
            pseudo_collate([inf._load(p) for p in paths]), False)
        f = inf.head.trunk(last_feature(inf.model.extract_feat(
            data['inputs'])))['f']
        raw = inf.head.ist.scores(inf.head.ist(f),
                                  torch.as_tensor(partial).float())
        # a margin at the median score: IST votes for about half the entries
        inf.head.ist.margin.fill_(float(raw.median()))
    votes, names = pseudo_label_votes(inf, paths, partial, batch_size=2)
    assert names == ['ist'] and votes.shape == (1, 5, 10)  # no prototypes
    with torch.no_grad():
        ist = inf.head.ist.pseudo_scores(inf.head.ist(f),
                                         torch.as_tensor(partial).float())
    np.testing.assert_array_equal(votes[0], (ist > 0).numpy())
    assert votes.any() and not votes.all()
    pbce = MultiLabelInferencer(osp.join(ROOT, 'configs',
                                         'pbce_demo_lite.py'), None)
    votes, names = pseudo_label_votes(pbce, paths, partial)
    assert names == [] and votes.shape == (0, 5, 10)


def test_merge_answers(tmp_path):
    ann = str(tmp_path / 'train.json')
    save_partial_annotations(ann, ['a.jpg', 'b.jpg'],
                             np.array([[1, 0, 0], [0, 0, -1]]),
                             ['x', 'y', 'z'])
    answers = tmp_path / 'answers.csv'
    answers.write_text('img_path,class,label,score,priority\n'
                       'a.jpg,y,-1,0.5,1\nb.jpg,x,,0.4,0.8\n'
                       'a.jpg,x,1,0.6,0.8\nb.jpg,y,1,0.3,0.6\n')
    out = str(tmp_path / 'r2.json')
    counts = merge_answers(ann, str(answers), out)
    assert counts == dict(answered=3, new=2, same=1, changed=0)
    paths, labels, _ = load_partial_annotations(out)
    np.testing.assert_array_equal(labels, [[1, -1, 0], [0, 1, -1]])
    # the original file is untouched
    np.testing.assert_array_equal(load_partial_annotations(ann)[1],
                                  [[1, 0, 0], [0, 0, -1]])
    answers.write_text('img_path,class,label\nb.jpg,z,1\n')
    with pytest.raises(ValueError, match="'b.jpg', class 'z': the answer 1 "
                       'contradicts the known label -1'):
        merge_answers(ann, str(answers), out)
    assert merge_answers(ann, str(answers), out,
                         overwrite_known=True)['changed'] == 1
    answers.write_text('img_path,class,label\nc.jpg,z,1\n')
    with pytest.raises(ValueError, match="image 'c.jpg' is not in"):
        merge_answers(ann, str(answers), out)


def test_positive_strategies_rank_likely_positives_first():
    scores = np.array([[0.5, 0.45, 0.99], [0.52, 0.1, 0.6]])
    partial = np.array([[1, 0, 0], [0, 0, -1]], np.int8)
    # positive: p largest first, among the unknown entries
    entries, pri = rank_unknown_entries(scores, partial, 4,
                                        strategy='positive',
                                        balance='none')
    assert entries.tolist() == [[0, 2], [1, 0], [0, 1], [1, 1]]
    np.testing.assert_allclose(pri, [0.99, 0.52, 0.45, 0.1])
    # rare-positive: p / (1 + known positives of the class); class 0 has 1
    entries, pri = rank_unknown_entries(scores, partial, 4,
                                        strategy='rare-positive',
                                        balance='none')
    assert entries.tolist() == [[0, 2], [0, 1], [1, 0], [1, 1]]
    np.testing.assert_allclose(pri, [0.99, 0.45, 0.26, 0.1])
    # uncertain-positive: u + p
    entries, pri = rank_unknown_entries(scores, partial, 4,
                                        strategy='uncertain-positive',
                                        balance='none')
    assert entries.tolist() == [[1, 0], [0, 1], [0, 2], [1, 1]]
    np.testing.assert_allclose(pri, [1.48, 1.35, 1.01, 0.3])
    with pytest.raises(ValueError, match='strategy must be one of'):
        rank_unknown_entries(scores, partial, 2, strategy='entropy')



def test_default_is_the_best_measured_strategy():
    """docs/own_data.md: uncertain-positive with the classes taking turns
    was ahead of uncertainty on 21 of 30 masks (cheap protocol)."""
    assert (DEFAULT_STRATEGY, DEFAULT_BALANCE) == ('uncertain-positive',
                                                   'class')
    assert set(STRATEGIES) == {'positive', 'rare-positive',
                               'uncertain-positive', 'uncertainty', 'random'}
    scores = np.array([[0.5, 0.9, 0.6], [0.55, 0.95, 0.1]])
    partial = np.zeros((2, 3), np.int8)
    # classes take turns by u + p: the best of class 0 (1.5), 2 (1.4),
    # 1 (1.1), then the second of each class, best first
    entries, pri = rank_unknown_entries(scores, partial, 6)
    assert entries.tolist() == [[0, 0], [0, 2], [0, 1], [1, 0], [1, 1],
                                [1, 2]]
    np.testing.assert_allclose(pri, [1.5, 1.4, 1.1, 1.45, 1.05, 0.3])
