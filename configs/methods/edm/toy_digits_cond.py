# Class-conditional variant of toy_digits.py (10 digit classes).
_base_ = ['./toy_digits.py']
model = dict(net=dict(label_dim=10, model=dict(label_dim=10)))
