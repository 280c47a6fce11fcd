# HST (IST + CST) on Visual Genome VG-200 with 30% known labels (known-proportion protocol,
# seed 0), ResNet-101, Adam 1e-5 / wd 5e-4, 20 epochs, x0.1 at 10, batch 32.
_base_ = [
    './_base_/datasets/vg_partial.py',
    './_base_/models/hst_r101.py',
    './_base_/schedules/protocol_adam_20e.py',
    './_base_/default_runtime.py',
]
known_ratio = 0.3
train_dataloader = dict(batch_size=32, dataset=dict(known_ratio=known_ratio))
model = dict(
    head=dict(
        num_classes=200,
        trunk=dict(class_embedding=dict(path='data/vg/glove_embeddings.npy')),
    ))
