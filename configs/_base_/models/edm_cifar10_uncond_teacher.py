# EDM teacher (shared/spec/sid_edm.md 2.5): DDPM++ [2,2,2], augment_dim 9, 55.73M; Heun 18 steps (NFE 35) FID 1.97.
# Get edm-cifar10-32x32-uncond-vp.pkl from
#   https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-cifar10-32x32-uncond-vp.pkl
# and save it under checkpoints/edm/.
# Read by kdm's restricted unpickler: the architecture comes from the pickle, its embedded code is never run.
teacher = dict(type='edm_pickle', path='checkpoints/edm/edm-cifar10-32x32-uncond-vp.pkl')
