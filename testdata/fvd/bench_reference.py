#!/usr/bin/env python3
"""The reference FVD path's throughput, for docs/BENCHMARKS.md beside `fvd -bench`.

    python3 testdata/fvd/bench_reference.py --detector testdata/fvd/detector.pt \
        --clips 2048 --frames 16 --size 320x240 --batch 16 --device cuda

The clips are uniform random frames drawn on the device (32 distinct clips for
each half, the second half's dimmer), as `fvd -bench` draws them. Features go
through the reference's path: each clip preprocessed on its own (shorter side
to 224, bilinear, centre crop, (x - 0.5) * 2), a batch stacked and sent to the
detector with rescale=False, resize=False, return_features=True, the rows
gathered with np.vstack; then the Fréchet distance of the two halves with
np.cov and scipy.linalg.sqrtm. One batch runs first as a warm-up.
"""

import argparse
import math
import time

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F


def preprocess(video, resolution=224):
    # video: [3, T, H, W] in [0, 1]
    _, _, h, w = video.shape
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    _, _, h, w = video.shape
    top, left = (h - resolution) // 2, (w - resolution) // 2
    video = video[:, :, top:top + resolution, left:left + resolution]
    return ((video - 0.5) * 2).contiguous()


def features(detector, clips, device, batch):
    feats = np.empty((0, 400))
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = torch.stack([preprocess(v) for v in clips[i:i + batch]]).to(device)
            out = detector(x, rescale=False, resize=False, return_features=True)
            feats = np.vstack([feats, out.detach().cpu().numpy()])
    return feats


def frechet_distance(fake, real):
    mu_f, sigma_f = fake.mean(axis=0), np.cov(fake, rowvar=False)
    mu_r, sigma_r = real.mean(axis=0), np.cov(real, rowvar=False)
    m = np.square(mu_f - mu_r).sum()
    s = scipy.linalg.sqrtm(np.dot(sigma_f, sigma_r))
    if isinstance(s, tuple):
        s = s[0]
    return float(np.real(m + np.trace(sigma_f + sigma_r - s * 2)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--detector", required=True)
    p.add_argument("--clips", type=int, default=2048)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", default="320x240")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    dev = torch.device(a.device)
    torch.manual_seed(1)
    det = torch.jit.load(a.detector, map_location=dev).eval()
    pools = [[torch.rand(3, a.frames, h, w, device=dev) * (1 - 0.2 * k) for _ in range(min(a.clips, 32))] for k in range(2)]
    clips = [pools[2 * i // max(a.clips, 2)][i % min(a.clips, 32)] for i in range(a.clips)]

    features(det, clips[:a.batch], dev, a.batch)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = features(det, clips, dev, a.batch)
    tf = time.perf_counter() - t0
    half = len(feats) // 2
    t1 = time.perf_counter()
    fd = frechet_distance(feats[:half], feats[half:])
    td = time.perf_counter() - t1
    print("reference: %d clips of %d frames at %dx%d on %s, batch %d, detector %s (torch %s, scipy %s)"
          % (a.clips, a.frames, w, h, dev, a.batch, a.detector, torch.__version__, scipy.__version__))
    print("  features  %8.3f s  %8.1f clips/s" % (tf, a.clips / tf))
    print("  distance  %8.3f s  (%d against %d rows of %d; FD %.4g)" % (td, half, len(feats) - half, feats.shape[1], fd))
    print("  total     %8.3f s  %8.1f clips/s" % (tf + td, a.clips / (tf + td)))


if __name__ == "__main__":
    main()
