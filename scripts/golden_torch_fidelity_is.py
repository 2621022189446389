#!/usr/bin/env python3
"""Golden values for InceptionScoreConventionTests: torch-fidelity's own `isc_features_to_metric` (pip install
torch-fidelity) on logits defined by a formula the Swift test recomputes, and numpy's RandomState(2020) permutation."""
import math

import numpy as np
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

N, C = 97, 13
logits = np.array([[math.sin(0.37 * i + 1.3 * j) * 3 + math.cos(j * 0.11) for j in range(C)] for i in range(N)], dtype=np.float32)
r = isc_features_to_metric(torch.tensor(logits))  # defaults: splits=10, shuffle=True, rng_seed=2020
print("torch-fidelity IS mean %.17g std %.17g" % (r["inception_score_mean"], r["inception_score_std"]))
print("RandomState(2020).permutation(10) =", np.random.RandomState(2020).permutation(10).tolist())
print("RandomState(2020).permutation(%d)[:8] =" % N, np.random.RandomState(2020).permutation(N)[:8].tolist())
