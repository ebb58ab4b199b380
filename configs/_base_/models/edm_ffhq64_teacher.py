# EDM teacher (shared/spec/sid_edm.md 2.5): DDPM++ [1,2,2,2], augment_dim 9, 61.81M; Heun 40 steps (NFE 79) FID 2.39.
# Get edm-ffhq-64x64-uncond-vp.pkl from
#   https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-ffhq-64x64-uncond-vp.pkl
# and save it under checkpoints/edm/.
# Read by kdm's restricted unpickler: the architecture comes from the pickle, its embedded code is never run.
teacher = dict(type='edm_pickle', path='checkpoints/edm/edm-ffhq-64x64-uncond-vp.pkl')
