# CIFAR-10 32x32 training set, from the official python batches (docs/datasets.md).
# Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into data/cifar10/.
# batch_size is per GPU: 64 = EDM's 512 on 8 GPUs; methods override it (DKDM: 128 on 1 GPU, SiD: 256 on 8 GPUs...).
# Datasets never augment: methods flip (or run EDM's augment pipe) on the device.
data_root = 'data/cifar10'
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CIFAR10Dataset', data_root=data_root, split='train'))
