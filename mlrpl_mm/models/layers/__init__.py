from .class_embedding import (CLIPClassEmbedding, LearnableClassEmbedding,
                              NpyClassEmbedding)
from .element_wise_linear import ElementWiseLinear, SSGRLElementWiseLinear
from .gated_gnn import GatedGNN, SSGRLGatedGNN
from .semantic_decoupling import SemanticDecoupling
from .semantic_trunk import SemanticTrunk
from .gmc import GMC, GATv2Layer
from .svfr import SVFR, chunked_attention
from .iprb import IPRB
from .pprb import PPRB, energy_quadrants
from .pprb_prototypes import QuadrantPrototypeAccumulator
from .intra_semantic_transfer import IntraSemanticTransfer
from .cross_semantic_transfer import CrossSemanticTransfer
from .kmeans import kmeans
from .dual_prompt_learner import DualPromptLearner

__all__ = [
    'IntraSemanticTransfer', 'CrossSemanticTransfer', 'kmeans',
    'CLIPClassEmbedding', 'LearnableClassEmbedding', 'NpyClassEmbedding',
    'ElementWiseLinear', 'GatedGNN', 'SSGRLElementWiseLinear', 'SSGRLGatedGNN',
    'SemanticDecoupling', 'SemanticTrunk',
    'GMC', 'GATv2Layer', 'SVFR', 'chunked_attention',
    'IPRB', 'PPRB', 'energy_quadrants', 'QuadrantPrototypeAccumulator',
    'DualPromptLearner'
]
