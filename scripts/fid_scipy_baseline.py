#!/usr/bin/env python3
"""FID by the scipy sqrtm route (pytorch-fid's / ADM's calculate_frechet_distance), for `varlab bench eval`.

Usage: fid_scipy_baseline.py STATS.npz
STATS.npz holds mu1, sigma1, mu2, sigma2 (float64). Prints one JSON line: {"fid": ..., "seconds": ...}
where seconds is the time of the formula alone (sqrtm of sigma1 @ sigma2 and the traces), not of loading.
Written from the published formula (Heusel et al. 2017; Dowson & Landau 1982), following the same steps as
the reference tools: sqrtm of the product, eps 1e-6 on the diagonals if not finite, real part if complex.
"""
import json
import sys
import time

import numpy as np
from scipy import linalg


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with np.load(sys.argv[1]) as f:
        mu1, sigma1, mu2, sigma2 = (f[k].astype(np.float64) for k in ("mu1", "sigma1", "mu2", "sigma2"))
    t0 = time.perf_counter()
    fid = frechet_distance(mu1, sigma1, mu2, sigma2)
    print(json.dumps({"fid": fid, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore")
    main()
