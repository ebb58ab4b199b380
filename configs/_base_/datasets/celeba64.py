# CelebA 64x64 as DKDM / DDPM-IP prepare it: all 202,599 img_align_celeba images resized directly to 64x64
# (cv2 bilinear, no crop) in one uint8 NHWC npz ('arr_0'), e.g. made with DDPM-IP's datasets/celeba64_npz.py.
# A folder of 64x64 PNGs works too: dataset=dict(type='ImageFolderDataset', data_root='data/celeba64/train').
# batch_size is per GPU: 64 = DKDM's 256 on 4 GPUs.
data_root = 'data/celeba64'
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='NpzDataset', path=data_root + '/celeba64_train.npz', key='arr_0'))
