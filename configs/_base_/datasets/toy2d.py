# 2-D toy distributions (generated, no files): items are dict(img=float32 (2,), label=-1).
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='Toy2DDataset', name='moons', num_samples=10000, seed=0))
