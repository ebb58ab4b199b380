# DKDM on the 16x16 digits (quickstart / toy benchmark, benchmarks/dkdm_toy.py): a student with about half the
# parameters of the digits teacher (714K vs 1.37M: three levels of 32 channels, two res blocks) distilled data-free
# from the ADM-style teacher of configs/methods/ddpm/toy_digits.py. Train the teacher first:
#   python tools/train.py configs/methods/ddpm/toy_digits.py --work-dir work_dirs/ddpm_toy_digits
#   python tools/train.py configs/methods/dkdm/toy_digits_dkdm.py
# To fit a CPU, the teacher chain is the 50-step respaced one (timestep_respacing, the reference's quirk 9), which is
# also the evaluation sampler: the pool holds round(0.4 * 50) = 20 batches of 64 and costs ~32K teacher steps.
# Metrics: Frechet distance in the digits classifier's feature space against the held-out digits
# (configs/_base_/evaluation/digits_classifier.py).
_base_ = ['../../_base_/schedules/dkdm.py', '../../_base_/evaluation/digits_classifier.py']

batch_size = 64
model = dict(
    type='DKDM',
    teacher=dict(type='kdm', path='work_dirs/ddpm_toy_digits/iter_3000.pth', ema='ema'),
    student=dict(type='ADMUNet', image_size=16, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=2,
                 attention_resolutions=(2, ), dropout=0.0, channel_mult=(1, 1, 1), num_heads=1,
                 num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True,
                 use_new_attention_order=True),
    timestep_respacing='50',
    rho=0.4,
    variant='dynamic',
    batch_size=batch_size,
    prepare_batch_size=1024,
    ema=dict(type='ConstantEMA', momentum=2e-3),
    sample_steps='50')
train_dataloader = dict(batch_size=batch_size)
optim_wrapper = dict(student=dict(optimizer=dict(lr=1e-3)))
train_cfg = dict(max_iters=1000)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=500, max_keep_ckpts=1))
custom_hooks = [dict(type='SampleGridHook', interval=500, num_samples=64, nrow=8)]
