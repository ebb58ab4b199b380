# Generation for validation and testing: one item per image, dict(seed, label); image i starts from the noise of
# seed i, so the samples do not depend on the batch size or the number of GPUs (EDM's protocol).
# DefaultSampler(round_up=False) gives every rank an exact share: no padded duplicate enters the statistics.
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-9999', label=-1))
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-49999', label=-1))
