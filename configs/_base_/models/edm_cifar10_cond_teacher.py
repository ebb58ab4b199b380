# EDM teacher (shared/spec/sid_edm.md 2.5): DDPM++ [2,2,2], 10 classes, augment_dim 9, 55.74M; NFE 35 FID 1.79.
# Get edm-cifar10-32x32-cond-vp.pkl from
#   https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-cond-vp.pkl
# and save it under checkpoints/edm/.
# Read by kdm's restricted unpickler: the architecture comes from the pickle, its embedded code is never run.
teacher = dict(type='edm_pickle', path='checkpoints/edm/edm-cifar10-32x32-cond-vp.pkl')
