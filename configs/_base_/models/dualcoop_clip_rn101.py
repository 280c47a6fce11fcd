# DualCoOp (Sun, Hu, Saenko, NeurIPS 2022) on the CLIP RN101 towers (the
# paper's Table 1 backbone). Only the prompt contexts train: the image tower
# (trainable='none', BN in eval mode) and the text tower are frozen.
# OpenAI weights: downloaded by open_clip on first use (then cached); the
# text transformer needs QuickGELU, chosen automatically for 'openai'
# (quick_gelu=None). fallback_to_random=False: a protocol run refuses to
# train random weights when the download fails (offline: pretrained=None
# explicitly, or a cached / local checkpoint file).
clip_name = 'RN101'
clip_weights = 'openai'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='OpenCLIPBackbone',
        model_name=clip_name,
        pretrained=clip_weights,
        trainable='none',
        fallback_to_random=False),
    neck=None,
    head=dict(
        type='DualCoOpHead',
        # class_names=[...]; None: from the dataset (PromptClassNamesHook)
        num_classes=80,
        prompt_learner=dict(
            type='DualPromptLearner',
            text_encoder=dict(model_name=clip_name, pretrained=clip_weights,
                              fallback_to_random=False),
            # M = 16 context tokens per prompt (paper)
            n_ctx=16,
            # class-specific contexts: 2 x C x 16 x 512 parameters, the
            # paper's #P column (1.3M for COCO's 80 classes, 0.3M for VOC's
            # 20); shared contexts (class_specific=False) have 16,384
            class_specific=True,
            ctx_init_std=0.02,
            # prompts per text-transformer call (recomputed in backward when
            # C exceeds it: bounded memory for VG-200 and larger label sets)
            class_chunk=100),
        # spatial softmax temperature of the region aggregation (paper: 0.02)
        tau=0.02,
        # None: CLIP's learned logit scale (100 for the OpenAI weights)
        logit_scale=None,
        # ASL over the known labels: gamma- = 2, gamma+ = 1, clip 0.05 (as
        # transcribed in issue 16 from the paper), summed over the known
        # entries as the ASL reference implementation the paper cites
        loss=dict(type='PartialAsymmetricLoss', gamma_pos=1.0, gamma_neg=2.0,
                  clip=0.05, reduction='sum')),
)
custom_hooks = [dict(type='PromptClassNamesHook')]
