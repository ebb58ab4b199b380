# FID-50k with EDM's protocol (EDM, SiD, SFD, CUD, SlimFlow report this number):
# 50,000 images from seeds 0-49999, quantised (x * 127.5 + 128).clamp(0, 255) to uint8, FIDInceptionV3 pool3
# features (TF1 bilinear resize to 299, (x - 128) / 128), float64 sums, covariance with N - 1, scipy sqrtm,
# against EDM's reference https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/cifar10-32x32.npz (download it once to
# data/fid-refs/). Inception weights: weights=PATH below, or $KDM_INCEPTION (see docs/metrics.md). EDM reports the
# minimum over three seed sets (0-49999, 50000-99999, 100000-149999): run tools/test.py with --seeds for each.
inception = dict(type='FIDInceptionV3', weights=None)
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SeedDataset', seeds='0-49999', label=-1))
test_evaluator = [dict(type='FID', detector=inception, ref='data/fid-refs/cifar10-32x32.npz')]
test_cfg = dict(type='TestLoop')
