# Test-only config: EvalToyGenerator scored in digits-classifier space (weights path set by the test).
_base_ = ['../../../configs/_base_/default_runtime.py', '../../../configs/_base_/evaluation/digits_classifier_cond.py']
custom_imports = dict(imports=['tests.evaluation.toy_generator'], allow_failed_imports=False)
model = dict(type='EvalToyGenerator', sample_ema=None)
train_dataloader = None
val_dataloader = None
test_dataloader = dict(batch_size=16, dataset=dict(seeds='0-39'))
