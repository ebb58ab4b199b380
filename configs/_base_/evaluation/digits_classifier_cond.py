# digits_classifier.py for class-conditional models: image i is generated for class i % 10 (balanced), and the
# classifier's argmax is compared with that class (ClassifierAccuracy) next to FD and PRDC.
_base_ = ['./digits_classifier.py']
test_dataloader = dict(dataset=dict(type='SeedDataset', seeds='0-999', label=-1, labels_cycle=10))
test_evaluator = [
    dict(type='FID', detector={{_base_.digits_detector}}, real={{_base_.digits_real}}, name='FD_classifier',
         fd_method='eigen'),
    dict(type='PRDC', detector={{_base_.digits_detector}}, real={{_base_.digits_real}}, nearest_k=5),
    dict(type='ClassifierAccuracy', detector={{_base_.digits_detector}}),
]
