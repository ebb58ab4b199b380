# Quickstart: DKDM, data-free distillation of teacher_adm.py into a student with about half its parameters
# (181K vs 345K: three levels of 16 channels, two res blocks). tools/quickstart.py sets model.teacher.path.
_base_ = ['../methods/dkdm/toy_digits_dkdm.py']

model = dict(teacher=dict(path='work_dirs/demo/adm_teacher/iter_800.pth'),
             student=dict(model_channels=16, channel_mult=(1, 1, 1), num_res_blocks=2, num_head_channels=-1,
                          num_heads=1, norm_groups=8),
             ema=dict(_delete_=True, type='WarmupEMA', decay=0.999))  # short run: see teacher_adm.py
train_cfg = dict(max_iters=500)
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=1), logger=dict(interval=50))
custom_hooks = [dict(type='SampleGridHook', interval=500, num_samples=64, nrow=8)]
