# EDM2 ImageNet-512 teacher, the post-hoc EMA reconstruction used by SiD (shared/spec/sid_edm.md 4.3):
# 280.2M, FID 2.56 (2.23)
# (63 NFE Heun, no guidance), SD-VAE latents 4x64x64, 1000 classes, float16 weights in the file.
# Get edm2-img512-s-2147483-0.130.pkl from
#   https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions/edm2-img512-s-2147483-0.130.pkl
# and save it under checkpoints/edm2/. Read by kdm's restricted unpickler (the embedded code is never run).
teacher = dict(type='edm_pickle', path='checkpoints/edm2/edm2-img512-s-2147483-0.130.pkl')
