// Module Metrics: the evaluation suite behind `varlab eval` (see ../../README.md and DESIGN.md).
//
// Networks:  InceptionV3 (pytorch-fid's FID Inception; pool3, sFID spatial features, 1008 logits) with the two
//            preprocessing modes of InceptionPreprocessing (tf = ADM evaluator, pytorch-fid); ResNet (torchvision
//            Bottleneck ResNet, ImageNet transform) for classifier accuracy. ConvBN folds BatchNorm into convs.
// Formulas:  GaussianStats + FID (float64, symmetric-eigendecomposition square root), InceptionScore (ADM
//            splits), PrecisionRecall (ADM ManifoldEstimator, k = 3), PRDC (clovaai prdc, k = 5), Accuracy
//            (top-1 / top-5 / per class). k-NN decisions are exact (Manifold.swift).
// Inputs:    ImageSet (folders, ADM .npz batches, shards, reference statistics), FeatureExtractor (batched, with
//            an on-disk feature cache), Evaluator (wires them the way ADM's evaluator does).
