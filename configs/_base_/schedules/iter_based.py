# Iteration-based training with exact resume (kdm.engine.KDMIterBasedTrainLoop). Evaluation (val/test loops,
# dataloaders and evaluators) comes from configs/_base_/evaluation/.
train_cfg = dict(type='KDMIterBasedTrainLoop', max_iters=200000, val_interval=10000)
