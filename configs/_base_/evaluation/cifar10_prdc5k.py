# SFD's precision / recall / density / coverage: Inception pool3 features of 5,000 generated and 5,000 real
# images (seeded random subsets), nearest_k = 5, strict "<" (Naeem et al. 2020).
inception = dict(type='FIDInceptionV3', weights=None)
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-4999', label=-1))
test_evaluator = [
    dict(type='PRDC', detector=inception, real='data/cifar10-32x32.zip', real_max=5000, nearest_k=5),
]
test_cfg = dict(type='TestLoop')
