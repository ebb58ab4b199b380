# EDM teacher (shared/spec/sid_edm.md 2.5):
# DhariwalUNet [1,2,3,4], 1000 classes, 295.90M; stochastic 256 steps FID 1.36.
# Get edm-imagenet-64x64-cond-adm.pkl from
#   https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-imagenet-64x64-cond-adm.pkl
# and save it under checkpoints/edm/.
# Read by kdm's restricted unpickler: the architecture comes from the pickle, its embedded code is never run.
teacher = dict(type='edm_pickle', path='checkpoints/edm/edm-imagenet-64x64-cond-adm.pkl')
