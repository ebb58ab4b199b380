# Runtime defaults shared by every kdm config (MMEngine text config).
default_scope = 'kdm'
runner_type = 'KDMRunner'  # CPU-aware DDP, safe/strict/atomic checkpoints (kdm/engine/runner.py)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='auto'),  # nccl on CUDA, gloo on CPU (kdm.engine.launcher.init_dist)
)
# One DDP per trainable sub-network (teachers and EMAs are frozen and only moved to the device).
model_wrapper_cfg = dict(type='KDMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10000, by_epoch=False, max_keep_ckpts=5,
                    backend_args=dict(backend='kdm_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    nan_guard=dict(type='NanGuardHook'),
)
custom_hooks = []

log_processor = dict(type='LogProcessor', window_size=100, by_epoch=False)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_level = 'INFO'

# seed 0 + per-rank streams; KDMIterBasedTrainLoop reseeds every iteration from (seed, rank, iteration).
randomness = dict(seed=0, diff_rank_seed=True)
load_from = None
resume = False
