"""Former home of the SPML / SigRL losses, kept so that existing imports
(``from mlrpl_mm.models.losses.spml_losses import EMLoss``) keep working.
Each loss now lives in its own module of :mod:`mlrpl_mm.models.losses`."""
from .assume_negative_loss import AssumeNegativeLoss, assume_negative_loss
from .em_apl_loss import EMAPLLoss
from .em_loss import EMLoss, SPMLEMLoss, em_loss_matrix
from .l1_distill_loss import L1DistillLoss, SigRLL1DistillLoss
from .large_loss_rejection_loss import LargeLossRejectionLoss
from .ranking_loss import RankingLoss, SPMLRankingLoss, ranking_loss
from .role_loss import ROLELoss
from .utils import LOG_EPS
from .weak_assume_negative_loss import (WeakAssumeNegativeLoss,
                                        weak_assume_negative_loss)

__all__ = [
    'LOG_EPS', 'AssumeNegativeLoss', 'assume_negative_loss',
    'WeakAssumeNegativeLoss', 'weak_assume_negative_loss', 'SPMLEMLoss',
    'EMLoss', 'em_loss_matrix', 'EMAPLLoss', 'LargeLossRejectionLoss',
    'SPMLRankingLoss', 'RankingLoss', 'ranking_loss', 'SigRLL1DistillLoss',
    'L1DistillLoss', 'ROLELoss'
]
