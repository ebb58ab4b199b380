# The DKDM schedule (shared/spec/dkdm_adm.md 3.6), shared by the distillation runs and the baselines:
# data-free loader (indices only, the model draws its inputs from the teacher pool), AdamW(lr 1e-4, weight decay 0)
# with a constant LR, no warm-up, no gradient clipping, log every 10 iterations, checkpoint every 10K.
# The reference never stops (lr_anneal_steps 0); the paper's ablation runs 200K iterations: select the checkpoint
# by FID. Batch sizes are per process: the configs give the reference's 1-GPU value; on W GPUs pass
# train_dataloader.batch_size=B/W model.batch_size=B/W to keep the global batch B.
_base_ = ['../default_runtime.py']

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='IndexDataset'))
optim_wrapper = dict(
    constructor='MultiNetOptimWrapperConstructor',
    student=dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)))
train_cfg = dict(type='KDMIterBasedTrainLoop', max_iters=200000, val_interval=10**9)
val_cfg = None  # no in-loop evaluation (as the reference): evaluate checkpoints with tools/test.py
# The checkpoint holds the pool (0.63 GB for CIFAR-10 rho = 0.4, 5 GB for CelebA-64): keep_ckpts x that on disk.
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=10000))
