# DSRB (IPRB + PPRB on the semantic trunk) on ResNet-101
# (docs/equations/dsrb.md, docs/equations/protocol.md). layer4 map (B, 2048,
# 14, 14) at 448 px -> 2x2 avg pooling -> 1x1 conv to D = 1024 + BN inside the
# trunk. Stages 1-3 frozen, BN in eval (layer4's BN trains).
# ImageNet weights (the protocol's torchvision ResNet-101) are loaded by
# init_weights() when training starts (a download on first use, then cached
# by torch hub). Offline / from scratch:
#   --cfg-options model.backbone.init_cfg=None
# Class embeddings: the reference's 300-d GloVe vectors of the class names as
# a (C, 300) .npy file (model.head.trunk.class_embedding.path), or
# dict(type='CLIPClassEmbedding', class_names=..., pretrained='openai') or
# dict(type='LearnableClassEmbedding', embed_dims=300).
# Ablations: model.head.iprb=None (PPRB only) or model.head.pprb=None (IPRB
# only); see configs/iprb_coco_p*.py and configs/pprb_coco_p*.py.
model = dict(
    type='ImageClassifier',
    # stem + stages 1-3 frozen, their BN in eval mode (frozen_stages=3);
    # layer4 trains with its BN in train mode, as the reference does
    # (backbone.eval(); backbone.layer4.train()).
    backbone=dict(type='ResNet', depth=101, num_stages=4, out_indices=(3, ),
                  frozen_stages=3, norm_eval=False, style='pytorch',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='torchvision://resnet101')),
    neck=None,
    head=dict(
        type='DSRBHead',
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
        # instance perspective: partner b' = B-1-b, learnable alpha (init 0.5)
        iprb=dict(type='IPRB', init_alpha=0.5),
        # prototype perspective: K = 1 unknown class per image, learnable beta;
        # quadrant of the energy peak with the reference's half of an odd side
        # (h* >= H // 2: the middle row of the 7x7 map is in the bottom half;
        # 'exact' = h* >= H / 2). An image without an unknown label blends its
        # lowest-index known class with target 1 - beta, as the reference's
        # CUDA topk does (fill_known=False: it blends nothing)
        pprb=dict(type='PPRB', init_beta=0.5, top_k=1, quadrant_split='floor',
                  fill_known=True),
        loss=dict(type='PartialBCELoss'),
        instance_loss=dict(type='InstanceContrastiveLoss'),
        # w_cls, w_i, w_p and the instance term's lambda_c
        loss_weights=dict(cls=1.0, iprb=1.0, pprb=1.0, instance=0.05),
        # linear ramp of the instance term over epoch 0
        ramp_epochs=1,
        blend_start_epoch=5,
        # plain / IPRB / PPRB features through the GNN as one batch
        batch_branches=True,
    ),
)
custom_hooks = [
    # label graph from the known training labels, before training
    dict(type='LabelGraphHook'),
    # (C, 4, D) prototypes at epochs 5, 10, 15 from the first 100 images per
    # (class, quadrant) in dataset order, through the training pipeline
    # (augmented images, as the reference); pipeline='test' = un-augmented.
    # quadrant_mean='reference': a filled cell's mean counts the reference's
    # all-zero placeholder row (sum / (n + 1)); 'exact' = sum / n. The pass
    # stops once every (class, quadrant) is final (early_stop, same result)
    dict(type='PPRBPrototypeHook', start_epoch=5, interval=5,
         max_per_quadrant=100, pipeline='train', quadrant_mean='reference',
         early_stop=True),
    # alpha / beta clamped into [0, 1] after every optimizer step
    dict(type='BlendWeightClampHook'),
]
# IPRB / PPRB take no part before epoch 5
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)
