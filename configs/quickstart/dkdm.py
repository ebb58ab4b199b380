# Quickstart: DKDM, data-free distillation of teacher_adm.py into a student with about half its parameters
# (configs/methods/dkdm/toy_digits_dkdm.py); tools/quickstart.py sets model.teacher.path to the trained teacher.
_base_ = ['../methods/dkdm/toy_digits_dkdm.py']

model = dict(teacher=dict(path='work_dirs/demo/adm_teacher/iter_1200.pth'))
train_cfg = dict(max_iters=600)
default_hooks = dict(checkpoint=dict(interval=600, max_keep_ckpts=1), logger=dict(interval=50))
custom_hooks = [dict(type='SampleGridHook', interval=600, num_samples=64, nrow=8)]
