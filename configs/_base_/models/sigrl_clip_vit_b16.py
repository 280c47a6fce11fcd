# SigRL (GMC + SVFR) on the CLIP ViT-B/16 image tower
# (docs/equations/sigrl.md). OpenAI weights need QuickGELU:
# 'ViT-B-16-quickgelu' + pretrained='openai'. The weights are downloaded by
# open_clip on first use. Offline, with no cached file, training fails naming
# the model and weights (fallback_to_random=False: a protocol config never
# trains a random CLIP); smoke tests set model.backbone.fallback_to_random=True
# and model.head.text_encoder.fallback_to_random=True for random towers.
clip_name = 'ViT-B-16-quickgelu'
clip_weights = 'openai'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='OpenCLIPBackbone',
        model_name=clip_name,
        pretrained=clip_weights,
        trainable='all',
        fallback_to_random=False),
    head=dict(
        type='SigRLHead',
        # class_names=[...] or label_embed_file=...; None: from the dataset
        # through SigRLLabelSetHook (custom_hooks below)
        text_encoder=dict(
            model_name=clip_name,
            pretrained=clip_weights,
            template='There is a {} in the scene',
            fallback_to_random=False),
        embed_dims=512,
        topk=16,
        logit_scale=1.0,
        gmc=dict(type='SigRLGMC', in_channels=512, hidden_channels=128,
                 num_heads=4, dropout=0.3),
        svfr=dict(type='SigRLSVFR', embed_dims=512, class_chunk=16),
        loss=dict(type='SPMLEMLoss', alpha=0.2),
        score_activation='sigmoid'),
)
custom_hooks = [dict(type='SigRLLabelSetHook')]
