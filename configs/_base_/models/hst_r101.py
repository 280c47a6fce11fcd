# HST (IST + CST on the semantic trunk) on ResNet-101 (docs/equations/hst.md,
# docs/equations/protocol.md). layer4 map (B, 2048, 14, 14) at 448 px -> 2x2
# avg pooling -> 1x1 conv to D = 1024 + BN inside the head. Stages 1-3 frozen,
# BN in eval mode. ImageNet weights (the protocol's torchvision ResNet-101) are
# loaded by init_weights() when training starts (a download on first use, then
# cached by torch hub). Offline / from scratch:
#   --cfg-options model.backbone.init_cfg=None
# Class embeddings: the reference's 300-d GloVe vectors of the class names as
# a (C, 300) .npy file (set model.head.trunk.class_embedding.path), or switch to
# dict(type='CLIPClassEmbedding', class_names=..., pretrained='openai') or
# dict(type='LearnableClassEmbedding', embed_dims=300).
model = dict(
    type='ImageClassifier',
    # stem + stages 1-3 frozen, their BN in eval mode (frozen_stages=3);
    # layer4 trains with its BN in train mode, as the reference does
    # (backbone.eval(); backbone.layer4.train()). norm_eval=True would also
    # freeze layer4's BN statistics.
    backbone=dict(type='ResNet', depth=101, num_stages=4, out_indices=(3, ),
                  frozen_stages=3, norm_eval=False, style='pytorch',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='torchvision://resnet101')),
    neck=None,
    head=dict(
        type='HSTHead',
        num_classes=80,
        in_channels=2048,
        trunk=dict(
            type='SemanticTrunk',
            feat_channels=1024,
            inter_channels=512,
            out_channels=1024,
            avg_pool=True,
            gnn_steps=3,
            class_embedding=dict(type='NpyClassEmbedding',
                                 path='data/coco/glove_embeddings.npy')),
        ist=dict(type='IntraSemanticTransfer', margin_init=1.0,
                 max_chunk_mb=256),
        cst=dict(type='CrossSemanticTransfer', num_prototypes=10,
                 margin_init=1.0, seed=0),
        cooccurrence_loss=dict(type='AsymmetricCooccurrenceLoss', gamma_neg=2,
                               gamma_pos=1, clip=0.05, eps=1e-8),
        instance_loss=dict(type='InstanceContrastiveLoss'),
        # 'reference' reproduces the reference code's sign (1 + y d);
        # 'pull_push' is the paper's intent (1 - y d). average='all' is the
        # reference's mean over all B x C entries (an unknown entry counts
        # the constant 1); 'known' = mean over the known entries only
        prototype_loss=dict(type='PrototypeContrastiveLoss', mode='reference',
                            average='all'),
        loss_weights=dict(cls=1.0, cls_ist=1.0, cls_cst=1.0,
                          cooccurrence=10.0, margin_ist=0.1, margin_cst=0.1,
                          instance=0.05, prototype=0.05),
        pseudo_label_epoch=5,
        ramp_epochs=1,
    ),
)
custom_hooks = [
    # label graph from the known training labels, before training
    dict(type='LabelGraphHook'),
    # prototypes at epoch 5, 10, 15 from the training images through the
    # training pipeline (augmented), as the reference computes them;
    # pipeline='test' uses un-augmented images instead
    # (docs/equations/protocol.md, switches)
    dict(type='CSTPrototypeHook', start_epoch=5, interval=5, pipeline='train'),
    # how many unknown labels IST / CST make positive, and their precision
    dict(type='PseudoLabelPrecisionHook'),
]
# IST / CST take no part before epoch 5
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)
