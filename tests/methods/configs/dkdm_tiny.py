# Test-only DKDM config: a random 8x8 one-channel ADM teacher with T = 20 (tests/methods/dkdm_teacher.py), a tiny
# student, a pool of round(0.1 * 20) * 4 = 8 entries per process. Trains in about a second per iteration on a CPU.
_base_ = ['../../../configs/_base_/schedules/dkdm.py']
custom_imports = dict(imports=['tests.methods.dkdm_teacher'], allow_failed_imports=False)

batch_size = 4
network = dict(type='ADMUNet', image_size=8, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=1,
               attention_resolutions=(2, ), channel_mult=(1, 1), num_head_channels=32, use_scale_shift_norm=True,
               resblock_updown=True, use_new_attention_order=True, dropout=0.1)
model = dict(
    type='DKDM',
    teacher=dict(type='dkdm_random_adm', network=network, diffusion=dict(schedule='cosine', steps=20,
                                                                           learn_sigma=True)),
    student=dict(network, channel_mult=(1, )),
    rho=0.1,
    variant='dynamic',
    batch_size=batch_size,
    prepare_batch_size=6,
    ema=dict(type='ConstantEMA', momentum=0.1),
    sample_steps=None)
train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(student=dict(optimizer=dict(lr=1e-3)))
train_cfg = dict(max_iters=4)
test_cfg = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=10))
