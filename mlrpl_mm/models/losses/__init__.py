from .assume_negative_loss import AssumeNegativeLoss, assume_negative_loss
from .asymmetric_cooccurrence_loss import (AsymmetricCooccurrenceLoss,
                                           asymmetric_loss)
from .em_apl_loss import EMAPLLoss
from .em_loss import EMLoss, SPMLEMLoss, em_loss_matrix
from .instance_contrastive_loss import (InstanceContrastiveLoss,
                                        instance_contrastive_loss)
from .l1_distill_loss import L1DistillLoss, SigRLL1DistillLoss
from .large_loss_rejection_loss import LargeLossRejectionLoss
from .partial_asymmetric_loss import (PartialAsymmetricLoss,
                                      asymmetric_loss_matrix,
                                      partial_asymmetric_loss)
from .partial_bce_loss import PartialBCELoss, partial_bce_with_logits
from .prototype_contrastive_loss import PrototypeContrastiveLoss
from .ranking_loss import RankingLoss, SPMLRankingLoss, ranking_loss
from .role_loss import ROLELoss
from .weak_assume_negative_loss import (WeakAssumeNegativeLoss,
                                        weak_assume_negative_loss)

__all__ = [
    'PartialAsymmetricLoss', 'partial_asymmetric_loss',
    'asymmetric_loss_matrix', 'AsymmetricCooccurrenceLoss', 'asymmetric_loss',
    'PrototypeContrastiveLoss', 'InstanceContrastiveLoss',
    'instance_contrastive_loss', 'PartialBCELoss', 'partial_bce_with_logits',
    'AssumeNegativeLoss', 'assume_negative_loss', 'WeakAssumeNegativeLoss',
    'weak_assume_negative_loss', 'SPMLEMLoss', 'EMLoss', 'em_loss_matrix',
    'EMAPLLoss', 'LargeLossRejectionLoss', 'SPMLRankingLoss', 'RankingLoss',
    'ranking_loss', 'SigRLL1DistillLoss', 'L1DistillLoss', 'ROLELoss'
]
