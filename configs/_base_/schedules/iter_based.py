# Iteration-based training with exact resume (kdm.engine.KDMIterBasedTrainLoop).
train_cfg = dict(type='KDMIterBasedTrainLoop', max_iters=200000, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
