# DDPM-IP: the ADM baseline plus input perturbation gamma = 0.15 (CIFAR-10; ImageNet-32 / CelebA-64 use 0.1).
_base_ = ['./cifar10_adm.py']
model = dict(input_perturbation=0.15)
