#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Train the small digits classifier used as the detector of the quickstart's metrics (the "LeNet-FID" practice).

    python tools/train_detector.py --out work_dirs/detectors/digits_classifier.pth [--epochs 30] [--resolution 16]

Trains :class:`kdm.evaluation.detectors.DigitsClassifier` on ``DigitsDataset(split='train')`` (scikit-learn's
handwritten digits, nothing downloaded) from the same uint8 pixels the metrics feed it, with ±1-pixel random
shifts, and reports the accuracy on the held-out ``split='test'`` digits. The file holds ``state_dict`` and
``meta`` (resolution, classes, feature width, test accuracy, seed) and loads with ``torch.load(weights_only=True)``.
About 10-30 s on a CPU.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train the digits classifier detector')
    p.add_argument('--out', default='work_dirs/detectors/digits_classifier.pth', help='output weight file')
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--resolution', type=int, default=16, help='image size of the digits (the quickstart uses 16)')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def load_split(split: str, resolution: int):
    import torch

    from kdm.datasets.digits import DigitsDataset
    ds = DigitsDataset(split=split, resolution=resolution)
    images = torch.stack([ds.get_uint8(i) for i in range(len(ds))])
    labels = torch.as_tensor([int(ds[i]['label']) for i in range(len(ds))])
    return images, labels


def accuracy(net, images, labels) -> float:
    import torch
    with torch.no_grad():
        pred = net(images, features=('logits',))['logits'].argmax(1)
    return float((pred == labels).double().mean())


def train(args):
    import torch
    import torch.nn.functional as F

    from kdm.evaluation.detectors import DigitsClassifier
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny convolutions: extra threads only add synchronisation overhead
    x_train, y_train = load_split('train', args.resolution)
    x_test, y_test = load_split('test', args.resolution)
    net = DigitsClassifier(random_init=True, seed=args.seed, resolution=args.resolution)
    net.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * ((len(x_train) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            x = net.preprocess(x_train[idx])
            # random shifts of up to one pixel (edge padding), so generated digits slightly off-centre are fine
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            x = torch.roll(F.pad(x, (1, 1, 1, 1), mode='replicate'), shifts=(dy, dx), dims=(2, 3))[..., 1:-1, 1:-1]
            loss = F.cross_entropy(net.forward_train(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            net.eval()
            print(f'epoch {epoch + 1}/{args.epochs}: loss {total / len(perm):.4f}, test accuracy '
                  f'{accuracy(net, x_test, y_test):.4f} ({time.time() - t0:.1f} s)', flush=True)
    net.eval().requires_grad_(False)
    return net, accuracy(net, x_train, y_train), accuracy(net, x_test, y_test), time.time() - t0


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    net, train_acc, test_acc, secs = train(args)
    meta = dict(arch='DigitsClassifier', resolution=args.resolution, num_classes=10,
                feature_dim=net.feature_dims['pool'], train_accuracy=train_acc, test_accuracy=test_acc,
                epochs=args.epochs, seed=args.seed, dataset='DigitsDataset(test_fraction=0.2, split_seed=0)',
                train_seconds=round(secs, 1))
    folder = osp.dirname(osp.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{args.out}.tmp'
    torch.save(dict(state_dict=net.state_dict(), meta=meta), tmp)
    os.replace(tmp, args.out)
    print(f'wrote {args.out}: test accuracy {test_acc:.4f} (train {train_acc:.4f}) in {secs:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
