# SSGRL baseline: the semantic trunk (decoupling + gated GNN + element-wise
# classifier) on ResNet-101 trained with partial BCE on the known labels.
# See hst_r101.py for the pretrained-weights and class-embedding switches.
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
        type='SSGRLHead',
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
        loss=dict(type='PartialBCELoss'),
        loss_weights=dict(cls=1.0),
    ),
)
custom_hooks = [dict(type='LabelGraphHook')]
