# Downsampled ImageNet 32x32 (the official "Imagenet32" training batches, 1,281,167 images), unconditional as in
# DKDM / DDPM-IP, as one uint8 NHWC npz ('arr_0') made with DDPM-IP's datasets/imagenet32_npz.py.
# A folder of PNGs works too: dataset=dict(type='ImageFolderDataset', data_root='data/imagenet32/train').
# batch_size is per GPU: 128 = DKDM's 512 on 4 GPUs.
data_root = 'data/imagenet32'
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='NpzDataset', path=data_root + '/ImageNet32_train_all.npz', key='arr_0'))
