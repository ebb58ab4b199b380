# ADM evaluator protocol (DKDM reports IS / FID / sFID; precision/recall with k = 3): 50,000 samples against the
# full CIFAR-10 training set as reference batch. Build the reference once (mu, sigma, mu_s, sigma_s + features):
#   python tools/fid_ref.py data/cifar10 --split train --features --out data/refs/cifar10_train_adm.npz
# (ADM's own reference .npz files with arr_0 and/or mu/sigma/mu_s/sigma_s are read as well.)
# Note: DKDM/ADM quantise samples by truncation ((x + 1) * 127.5).clamp(0, 255).to(uint8); kdm models use EDM's
# rounding, which is ~0.5 grey level brighter (docs/metrics.md).
inception = dict(type='FIDInceptionV3', weights=None)
adm_ref = 'data/refs/cifar10_train_adm.npz'
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-49999', label=-1))
test_evaluator = [
    dict(type='InceptionScore', detector=inception, splits=10),
    dict(type='FID', detector=inception, ref=adm_ref),
    dict(type='SFID', detector=inception, ref=adm_ref),
    dict(type='PrecisionRecall', detector=inception, ref=adm_ref, nearest_k=3, real_max=10000),
]
test_cfg = dict(type='TestLoop')
