# The quickstart's metrics on 16x16 digits: a small CNN trained by kdm is the detector ("LeNet-FID" practice;
# train it once with `python tools/train_detector.py --out work_dirs/detectors/digits_classifier.pth`).
# FD_classifier: Frechet distance of its 64-d penultimate features between 1,000 samples and the 359 held-out
# digits; PRDC (k = 5) in the same space. Numbers are comparable only with the same classifier file (its sha256
# is printed with every number).
digits_detector = dict(type='DigitsClassifier', weights='work_dirs/detectors/digits_classifier.pth')
digits_real = dict(type='DigitsDataset', split='test', resolution=16, test_fraction=0.2, split_seed=0)
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-999', label=-1))
test_evaluator = [
    dict(type='FID', detector=digits_detector, real=digits_real, name='FD_classifier', fd_method='eigen'),
    dict(type='PRDC', detector=digits_detector, real=digits_real, nearest_k=5),
]
test_cfg = dict(type='TestLoop')
