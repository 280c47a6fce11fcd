from .instance_contrastive_loss import (InstanceContrastiveLoss,
                                        instance_contrastive_loss)
from .partial_asymmetric_loss import (PartialAsymmetricLoss,
                                      partial_asymmetric_loss)
from .partial_bce_loss import PartialBCELoss, partial_bce_with_logits
from .spml_losses import (AssumeNegativeLoss, EMAPLLoss, EMLoss,
                          L1DistillLoss, LargeLossRejectionLoss, RankingLoss,
                          ROLELoss, WeakAssumeNegativeLoss)
from .asymmetric_cooccurrence_loss import (AsymmetricCooccurrenceLoss,
                                           asymmetric_loss)
from .prototype_contrastive_loss import PrototypeContrastiveLoss

__all__ = ['PartialAsymmetricLoss', 'partial_asymmetric_loss',
           'AsymmetricCooccurrenceLoss', 'asymmetric_loss', 'PrototypeContrastiveLoss',
           'InstanceContrastiveLoss', 'instance_contrastive_loss',
           'PartialBCELoss', 'partial_bce_with_logits', 'AssumeNegativeLoss', 'EMAPLLoss',
           'EMLoss', 'L1DistillLoss', 'LargeLossRejectionLoss', 'RankingLoss', 'ROLELoss',
           'WeakAssumeNegativeLoss']
