# Baseline "data-limited training" (DKDM paper Table 2, spec 4.2), 5 % real data: the 14M student trained with the
# hybrid loss on 50,000 images of which round(0.05 * 50,000) = 2,500 are real CIFAR-10 training images and the rest
# teacher samples, drawn as DKDM's datasets/mix.py does (NumPy seed 0). Reference: CIFAR10-14M-Baseline-0.05.yaml.
_base_ = ['./cifar10_14m_baseline_datafree.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MixedDataset',
        real=dict(type='CIFAR10Dataset', data_root='data/cifar10', split='train'),
        synthetic=dict(type='NpzDataset', path={{_base_.synthetic_npz}}),
        real_fraction=0.05,
        seed=0))
