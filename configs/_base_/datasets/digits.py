# scikit-learn's 1,797 handwritten digits upsampled to 16x16 (the quickstart and toy benchmark data; no download).
# The stratified split holds out 359 digits ('test') for Frechet distances in a digits classifier's feature space.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DigitsDataset', split='train', resolution=16, test_fraction=0.2, split_seed=0))
# The held-out digits, for metrics that compute their reference features from a dataset.
digits_test = dict(type='DigitsDataset', split='test', resolution=16, test_fraction=0.2, split_seed=0)
