# Baseline "data-based training" (DKDM Table 2, 100 % real data, CIFAR10-14M-Baseline-1.yaml): the 14M student
# trained with the hybrid loss on the real CIFAR-10 training set (get it as in docs/datasets.md).
_base_ = ['./cifar10_14m_baseline_datafree.py']
train_dataloader = dict(dataset=dict(_delete_=True, type='CIFAR10Dataset', data_root='data/cifar10', split='train'))
