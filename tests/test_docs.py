"""The documentation is consistent with the repository: relative links (and
their #anchors) resolve, every config a doc or a metafile names exists, the
README's "which config" table covers exactly the files of configs/, the
metafiles are all imported by model-index.yml, and the code examples of
docs/add_dataset.md and docs/other_backbones.md run. Docs cannot drift: no
markdown file holds a section twice, no link or citation points outside the
repository, and the equation files that docstrings and comments cite
(``docs/equations/<name>.md``) exist."""
import glob
import itertools
import os
import os.path as osp
import re

import numpy as np
import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = sorted(glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True))
MD_FILES = [osp.join(ROOT, 'README.md')] + DOCS
CONFIGS = sorted(osp.splitext(osp.basename(p))[0]
                 for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))

LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```.*?^```', re.S | re.M)


def _rel(path):
    return osp.relpath(path, ROOT)


def _text(path, code=True):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    return text if code else FENCE.sub('', text)


def _slug(heading):
    """GitHub's anchor of a markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r'[`*_]', '', s)
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def _anchors(path):
    return {_slug(m.group(1)) for m in
            re.finditer(r'^#{1,6}\s+(.*)$', _text(path, code=False), re.M)}


def expand(pattern):
    """``hst_{coco,voc}_p{10..90}`` -> the names it stands for ({a..b}: step
    10, the docs' notation for the nine proportions)."""
    parts = re.split(r'(\{[^}]*\})', pattern)
    options = []
    for part in parts:
        if part.startswith('{') and part.endswith('}'):
            body = part[1:-1]
            m = re.fullmatch(r'(\d+)\.\.(\d+)', body)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                options.append([str(v) for v in range(lo, hi + 1, 10)])
            else:
                options.append(body.split(','))
        else:
            options.append([part])
    return [''.join(c) for c in itertools.product(*options)]


def _names_exist(pattern):
    """Config names (without .py) matched by a doc pattern, checked to exist."""
    out = []
    for name in expand(pattern):
        if '*' in name:
            hits = glob.glob(osp.join(ROOT, 'configs', name + '.py'))
            assert hits, f'no config matches configs/{name}.py'
            out += [osp.splitext(osp.basename(h))[0] for h in hits]
        else:
            out.append(name)
    return out


def test_expand_notation():
    assert expand('hst_{coco,voc}_p{10..30}') == [
        'hst_coco_p10', 'hst_coco_p20', 'hst_coco_p30', 'hst_voc_p10',
        'hst_voc_p20', 'hst_voc_p30']
    assert expand('pbce_demo') == ['pbce_demo']


@pytest.mark.parametrize('md', MD_FILES, ids=_rel)
def test_relative_links_resolve(md):
    text = _text(md, code=False)
    bad = []
    for target in LINK.findall(text):
        if re.match(r'^[a-z]+:', target):          # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        dest = md if not path else osp.normpath(osp.join(osp.dirname(md), path))
        if not osp.exists(dest):
            bad.append(f'{target} (no file {_rel(dest)})')
        elif anchor and dest.endswith('.md') and anchor not in _anchors(dest):
            bad.append(f'{target} (no heading #{anchor} in {_rel(dest)})')
    assert not bad, f'{_rel(md)}: broken links: {bad}'


@pytest.mark.parametrize('md', MD_FILES, ids=_rel)
def test_no_duplicate_sections(md):
    """No two headings with the same title at the same level under the same
    parent heading (a section pasted twice, possibly with diverging tables)."""
    stack, seen, dups = [], {}, []
    for m in re.finditer(r'^(#{1,6})\s+(.*?)\s*#*\s*$', _text(md, code=False),
                         re.M):
        level, title = len(m.group(1)), m.group(2).strip()
        stack = [s for s in stack if s[0] < level]
        key = (tuple(s[1] for s in stack), level, title)
        if key in seen:
            dups.append(f'{"#" * level} {title} (under {" > ".join(key[0]) or "the top"})')
        seen[key] = True
        stack.append((level, title))
    assert not dups, f'{_rel(md)}: sections held twice: {dups}'


# Spec files that used to live outside the repository; their equations ship
# in docs/equations/ (conventions.md was folded into docs/design.md).
SPEC_NAMES = ('protocol', 'hst', 'dsrb', 'sigrl', 'conventions')
OUTSIDE = re.compile(r'\.\./shared|/work/|(?<![\w-])specs/')
SPEC_CITE = re.compile(r'(?<![\w.\-])((?:[\w.\-]+/)*)(' + '|'.join(SPEC_NAMES) +
                       r')\.md\b')


@pytest.mark.parametrize('md', MD_FILES, ids=_rel)
def test_docs_cite_nothing_outside_the_repository(md):
    """No link, code span or plain-text citation points outside the
    repository, and every cited equation file resolves (relative to the
    markdown file, or to the repository root)."""
    text = _text(md)
    bad = [f'line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}'
           for m in OUTSIDE.finditer(text)]
    # a link's text is not a citation; its target is
    plain = re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)', r' \2 ', text)
    for m in SPEC_CITE.finditer(plain):
        if m.group(2) == 'conventions':
            bad.append(f'{m.group(0)!r} (folded into docs/design.md)')
            continue
        cands = [osp.normpath(osp.join(osp.dirname(md), m.group(0))),
                 osp.join(ROOT, m.group(0))]
        if not any(osp.isfile(c) for c in cands):
            bad.append(f'{m.group(0)!r} (no such file; the equations are in '
                       f'docs/equations/{m.group(2)}.md)')
    assert not bad, f'{_rel(md)}: citations outside the repository: {bad}'


def test_equation_files_exist():
    for name in SPEC_NAMES[:-1]:
        assert osp.isfile(osp.join(ROOT, 'docs', 'equations', name + '.md')), name


CODE_TREES = ('mlrpl_mm', 'tools', 'configs', 'benchmarks')


def _code_files():
    for tree in CODE_TREES:
        for path in sorted(glob.glob(osp.join(ROOT, tree, '**', '*'),
                                     recursive=True)):
            if path.endswith(('.py', '.md')) and '__pycache__' not in path:
                yield path


def test_code_cites_equations_in_the_repository():
    """Docstrings and comments of mlrpl_mm/, tools/, configs/ and benchmarks/
    cite an equation file as ``docs/equations/<name>.md`` (a file of the
    repository), never a bare ``dsrb.md`` or a path outside the repository.
    (Old bare citations are rewritten to that form by the issue #14 citation
    fix script.)"""
    bad = []
    for path in _code_files():
        text = _text(path)
        for i, line in enumerate(text.splitlines(), 1):
            for m in OUTSIDE.finditer(line):
                bad.append(f'{_rel(path)}:{i}: {m.group(0)!r} points outside '
                           'the repository')
            for m in SPEC_CITE.finditer(line):
                name = m.group(2)
                want = ('docs/design.md' if name == 'conventions' else
                        f'docs/equations/{name}.md')
                if m.group(0) != want or not osp.isfile(osp.join(ROOT, want)):
                    bad.append(f'{_rel(path)}:{i}: cites {m.group(0)!r}, '
                               f'should be {want!r}')
    if bad:
        pytest.fail('citations of spec files that are not in the repository '
                    f'({len(bad)}):\n' + '\n'.join(bad), pytrace=False)


@pytest.mark.parametrize('md', MD_FILES, ids=_rel)
def test_configs_named_in_docs_exist(md):
    text = _text(md)
    missing = []
    for m in re.finditer(r'configs/([\w{}.,*]+?)\.py', text):
        pattern = m.group(1)
        if pattern.startswith('_base_') or '/' in pattern:
            continue
        for name in _names_exist(pattern):
            if not osp.isfile(osp.join(ROOT, 'configs', name + '.py')):
                missing.append(f'configs/{name}.py')
    for m in re.finditer(r'configs/(_base_/[\w/]+\.py)', text):
        if not osp.isfile(osp.join(ROOT, 'configs', m.group(1))):
            missing.append(f'configs/{m.group(1)}')
    assert not missing, f'{_rel(md)} names missing configs: {sorted(set(missing))}'


def _which_config_table():
    text = _text(osp.join(ROOT, 'README.md'))
    start = text.index('## Configs: which one')
    end = text.index('\n## ', start + 1)
    rows = [line for line in text[start:end].splitlines()
            if line.startswith('|') and not line.startswith('|---')][1:]
    assert len(rows) >= 6, rows
    names = []
    for row in rows:
        for token in re.findall(r'`([^`]+)`', row):
            if re.fullmatch(r'[a-z0-9_{}.,*]+', token) and '_' in token:
                names += _names_exist(token)
    return names


def test_readme_config_table_matches_configs_folder():
    names = _which_config_table()
    missing = sorted({n for n in names if n not in CONFIGS})
    assert not missing, f'README lists configs that do not exist: {missing}'
    unlisted = sorted(set(CONFIGS) - set(names))
    assert not unlisted, f'configs/ files missing from the README table: {unlisted}'


def _model_index():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        return yaml.safe_load(f)


def test_model_index_imports_every_metafile():
    imports = _model_index()['Import']
    on_disk = sorted(_rel(p) for p in glob.glob(
        osp.join(ROOT, 'docs', '**', 'metafile.yml'), recursive=True))
    assert sorted(imports) == on_disk
    assert len(set(imports)) == len(imports)


def test_metafiles_name_existing_configs_and_readmes():
    seen = set()
    for meta in _model_index()['Import']:
        with open(osp.join(ROOT, meta)) as f:
            data = yaml.safe_load(f)
        collections = {c['Name'] for c in data['Collections']}
        for c in data['Collections']:
            if c.get('README'):
                assert osp.isfile(osp.join(ROOT, c['README'])), (meta, c['README'])
        assert data['Models'], meta
        for m in data['Models']:
            assert m['Name'] not in seen, f'{meta}: duplicate model {m["Name"]}'
            seen.add(m['Name'])
            assert m['In Collection'] in collections, (meta, m['Name'])
            assert osp.isfile(osp.join(ROOT, m['Config'])), \
                f'{meta}: {m["Name"]}: no config {m["Config"]}'
            for r in m.get('Results') or []:
                assert r['Task'] and r['Dataset'] and r['Metrics'], (meta, m['Name'])
                # every figure is marked as the paper's or as ours
                for key in r['Metrics']:
                    assert 'published' in key or 'this repository' in key, \
                        (meta, m['Name'], key)


def test_method_metafiles_cover_their_configs():
    """Every config of the HST / DSRB / baseline families has a model entry."""
    listed = set()
    for meta in ('docs/hst/metafile.yml', 'docs/dsrb/metafile.yml',
                 'docs/baselines/metafile.yml', 'docs/sigrl/metafile.yml',
                 'docs/dualcoop/metafile.yml'):
        with open(osp.join(ROOT, meta)) as f:
            listed |= {osp.splitext(osp.basename(m['Config']))[0]
                       for m in yaml.safe_load(f)['Models']}
    family = re.compile(
        r'^(hst|ist|cst|ssgrl|dsrb|iprb|pprb|pbce|spml|sigrl|dualcoop)_')
    missing = sorted(c for c in CONFIGS if family.match(c) and c not in listed)
    assert not missing, missing


def _code_blocks(md, lang='python'):
    text = _text(osp.join(ROOT, 'docs', md))
    return re.findall(r'^```' + lang + r'\n(.*?)^```', text, re.S | re.M)


def test_add_dataset_csv_example_runs(tmp_path):
    """The custom dataset class of docs/add_dataset.md, wrapped in
    PartialLabelDataset."""
    import mlrpl_mm  # noqa: F401
    from mmpretrain.registry import DATASETS
    code = next(b for b in _code_blocks('add_dataset.md')
                if 'class MyCsvMultiLabel' in b)
    if 'MyCsvMultiLabel' not in DATASETS.module_dict:
        exec(compile(code, 'docs/add_dataset.md', 'exec'), {})
    (tmp_path / 'classes.txt').write_text('cat\ndog\ncar\n')
    (tmp_path / 'train.csv').write_text(
        'a.jpg,cat;car\nb.jpg,dog\nc.jpg,\nd.jpg,car\n')
    inner = dict(type='MyCsvMultiLabel', data_root=str(tmp_path),
                 ann_file='train.csv', classes_file=str(tmp_path / 'classes.txt'),
                 data_prefix='images')
    ds = DATASETS.build(inner)
    np.testing.assert_array_equal(ds.full_labels, [[1, -1, 1], [-1, 1, -1],
                                                   [-1, -1, -1], [-1, -1, 1]])
    assert ds.get_data_info(0)['img_path'] == osp.join(str(tmp_path), 'images', 'a.jpg')
    pl = DATASETS.build(dict(type='PartialLabelDataset', mode='proportion',
                             known_ratio=0.5, dataset=inner))
    from mlrpl_mm.datasets import proportion_mask
    np.testing.assert_array_equal(pl.partial_labels,
                                  proportion_mask(ds.full_labels, 0.5))
    assert 'full_label' not in pl.get_data_info(0)      # hidden from the model
    (tmp_path / 'bad.csv').write_text('a.jpg,bird\n')
    with pytest.raises(ValueError, match="line 1: unknown class 'bird'"):
        DATASETS.build(dict(inner, ann_file='bad.csv'))


def test_add_dataset_mmpretrain_config_example_builds(tmp_path):
    """The MultiLabelDataset config of docs/add_dataset.md: datasets and
    model build, the training labels are the seed-0 30% masks."""
    import json

    import mlrpl_mm  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    from mlrpl_mm.datasets import proportion_mask
    code = next(b for b in _code_blocks('add_dataset.md')
                if "type='MultiLabelDataset'" in b)
    code = code.replace("'./_base_/", f"'{ROOT}/configs/_base_/")
    code = code.replace("'data/mydata'", repr(str(tmp_path)))
    rng = np.random.RandomState(0)
    labels = rng.rand(20, 3) < 0.4
    for split in ('train', 'test'):
        (tmp_path / f'{split}.json').write_text(json.dumps(dict(
            metainfo=dict(classes=['cat', 'dog', 'car']),
            data_list=[dict(img_path=f'images/{i:04d}.jpg',
                            gt_label=np.flatnonzero(r).tolist())
                       for i, r in enumerate(labels)])))
    cfg_file = tmp_path / 'my_config.py'
    cfg_file.write_text(code)
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope('mmpretrain')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    full = np.where(labels, 1, -1).astype(np.int8)
    np.testing.assert_array_equal(train.partial_labels, proportion_mask(full, 0.3))
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(val) == 20
    assert list(val.metainfo['classes']) == ['cat', 'dog', 'car']
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    assert model.head.num_classes == 3


def test_other_backbones_swin_snippet_fits_the_head():
    """The Swin snippet of docs/other_backbones.md: the built backbone's last
    map has the head's in_channels and the head scores it."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mlrpl_mm  # noqa: F401
    code = next(b for b in _code_blocks('other_backbones.md')
                if 'SwinTransformer' in b)
    ns = {}
    exec(code, ns)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'hst_coco_p30.py'))
    cfg.merge_from_dict(dict(model=ns['model']))
    init_default_scope('mmpretrain')
    backbone = MODELS.build(cfg.model.backbone)
    backbone.eval()
    with torch.no_grad():
        feat = backbone(torch.zeros(1, 3, 224, 224))[-1]
    assert feat.dim() == 4 and feat.shape[1] == cfg.model.head.in_channels
    head_cfg = dict(cfg.model.head, class_embedding=dict(
        type='LearnableClassEmbedding', embed_dims=8), feat_channels=16,
        inter_channels=8, out_channels=16, ist=None, cst=None)
    head = MODELS.build(head_cfg)
    with torch.no_grad():
        logits = head((feat, ))
    assert logits.shape == (1, 80)


def test_demo_results_are_filled_and_agree():
    """Every demo row of README.md and docs/results.md states a measured mAP
    (no placeholder left), and both files give the same mAP per config."""
    maps = {}
    for md in ('README.md', 'docs/results.md'):
        text = _text(osp.join(ROOT, md))
        assert 'TODO_FILL' not in text, md
        rows = re.findall(r'^\| `(?:configs/)?(\w*demo)(?:\.py)?`[^|]*\|(.*)$',
                          text, re.M)
        assert rows, md
        for name, rest in rows:
            nums = [c.strip() for c in rest.split('|')
                    if re.fullmatch(r'\d+\.\d\d', c.strip())]
            assert nums, (md, name, rest)
            maps.setdefault(name, set()).add(nums[0])
    assert {'pbce_demo', 'hst_demo', 'dsrb_demo'} <= set(maps)
    assert all(len(v) == 1 for v in maps.values()), maps