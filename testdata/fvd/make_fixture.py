#!/usr/bin/env python3
"""Makes the parity fixture of osv/fvd (run on a machine with PyTorch and SciPy).

    python3 testdata/fvd/make_fixture.py OUT_DIR

writes into OUT_DIR/fvd/:
  detector.pt          a scripted module with the call signature of StyleGAN-V's
                       I3D file (x [N, 3, T, 224, 224] in [-1, 1], rescale, resize,
                       return_features), random weights: two 3-d convolutions and
                       a linear layer to 400 features
  other_signature.pt   a scripted module whose forward takes only x
  tuple_output.pt      a scripted module with the signature that returns a tuple
  state_dict.pt        torch.save of a state_dict (not TorchScript)
  fixture.safetensors  the clips (uint8, [T, H, W, 3] as osv/data decodes them),
                       samples of their preprocessed tensors, the detector's
                       features on the CPU (and on CUDA when there is one, TF32
                       off), Gaussian feature sets, and the Fréchet distances
                       computed the way StyleGAN-V's FVD code computes them:
                       np.cov (N - 1), scipy.linalg.sqrtm of the product, the
                       real part of the trace formula, the mean term alone when
                       the first set has fewer than 2 rows.
Copy OUT_DIR/fvd/* into testdata/fvd/.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import scipy
import scipy.linalg
import torch
import torch.nn.functional as F

FRAMES = 4
CLIPS = 10  # per set
RESOLUTION = 224
SIZES = [(32, 48), (48, 32), (40, 40), (36, 50), (45, 30), (30, 44), (50, 36), (33, 47), (42, 42), (38, 56)]


class Detector(torch.nn.Module):
    """Random weights behind the reference detector's call signature."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv3d(3, 8, kernel_size=(3, 7, 7), stride=(1, 4, 4), padding=(1, 3, 3))
        self.conv2 = torch.nn.Conv3d(8, 16, kernel_size=3, stride=2, padding=1)
        self.fc = torch.nn.Linear(32, 400)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 224, 224], mode="trilinear", align_corners=False)
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        pooled = torch.cat([h.mean(dim=[2, 3, 4]), h.amax(dim=[2, 3, 4])], dim=1)
        f = self.fc(pooled)
        if return_features:
            return f
        return F.softmax(f, dim=1)


class OtherSignature(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 400)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=[2, 3, 4]))


class TupleOutput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False):
        f = self.fc(x.mean(dim=[2, 3, 4]))
        return f, f


def make_clip(rng, h, w, t, kind):
    """A moving pattern of sinusoids plus noise, uint8 [t, h, w, 3]."""
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    freq = rng.uniform(0.05, 0.25 + 0.3 * kind, size=(3, 2))
    phase = rng.uniform(0, 2 * math.pi, size=3)
    speed = rng.uniform(-2, 2, size=2) * (1 + 2 * kind)
    base = rng.uniform(0.3, 0.7) + 0.15 * kind
    out = np.empty((t, h, w, 3), dtype=np.uint8)
    for f in range(t):
        for c in range(3):
            v = base + 0.35 * np.sin(freq[c, 0] * (xx + speed[0] * f) + freq[c, 1] * (yy + speed[1] * f) + phase[c])
            v = v + rng.normal(0, 0.03 + 0.05 * kind, size=v.shape)
            out[f, :, :, c] = np.clip(np.round(v * 255), 0, 255).astype(np.uint8)
    return out


def to_video(clip):
    """uint8 [T, H, W, 3] -> float32 [3, T, H, W] in [0, 1]."""
    return torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 255.0


def preprocess(video, resolution=RESOLUTION):
    """The reference preprocessing of one clip [3, T, H, W] in [0, 1]."""
    _, _, h, w = video.shape
    scale = resolution / min(h, w)
    if h < w:
        size = (resolution, math.ceil(w * scale))
    else:
        size = (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    _, _, h, w = video.shape
    top = (h - resolution) // 2
    left = (w - resolution) // 2
    video = video[:, :, top:top + resolution, left:left + resolution]
    video = (video - 0.5) * 2
    return video.contiguous()


def features(detector, clips, device, batch=10):
    rows = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = torch.stack([preprocess(to_video(c).to(device)) for c in clips[i:i + batch]])
            rows.append(detector(x, rescale=False, resize=False, return_features=True).cpu().numpy())
    return np.concatenate(rows, axis=0)


def frechet_distance(fake, real):
    """The Fréchet distance as StyleGAN-V's FVD code computes it."""
    mu_f, sigma_f = fake.mean(axis=0), np.cov(fake, rowvar=False)
    mu_r, sigma_r = real.mean(axis=0), np.cov(real, rowvar=False)
    m = np.square(mu_f - mu_r).sum()
    if fake.shape[0] < 2:
        return float(np.real(m))
    s = scipy.linalg.sqrtm(np.dot(sigma_f, sigma_r))
    if isinstance(s, tuple):
        s = s[0]
    return float(np.real(m + np.trace(sigma_f + sigma_r - s * 2)))


def frechet_eigh(a, b):
    """The same distance through symmetric eigendecompositions (a check only)."""
    mu_a, sa = a.mean(axis=0), np.cov(a, rowvar=False)
    mu_b, sb = b.mean(axis=0), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root @ sb @ root
    lam = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.square(mu_a - mu_b).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def save_safetensors(path, tensors, metadata):
    codes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("uint8"): "U8"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fvd")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(16)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    det = torch.jit.script(Detector().eval())
    det.save(os.path.join(out, "detector.pt"))
    torch.jit.script(OtherSignature().eval()).save(os.path.join(out, "other_signature.pt"))
    torch.jit.script(TupleOutput().eval()).save(os.path.join(out, "tuple_output.pt"))
    torch.save(torch.nn.Linear(3, 4).state_dict(), os.path.join(out, "state_dict.pt"))

    tensors = {}
    sets = {}
    for name, kind in (("a", 0), ("b", 1)):
        clips = [make_clip(rng, h, w, FRAMES, kind) for (h, w) in SIZES[:CLIPS]]
        sets[name] = clips
        for i, c in enumerate(clips):
            tensors["clips.%s.%d" % (name, i)] = c
            pre = preprocess(to_video(c))
            tensors["pre.%s.%d" % (name, i)] = pre[:, :, ::28, ::28].numpy().copy()
        tensors["features.%s" % name] = features(det, clips, "cpu")
    fa = tensors["features.a"].astype(np.float64)
    fb = tensors["features.b"].astype(np.float64)

    # Python's own spread between the CPU and CUDA paths, for the record.
    notes = {}
    if torch.cuda.is_available():
        det_cuda = torch.jit.load(os.path.join(out, "detector.pt"), map_location="cuda")
        for name in ("a", "b"):
            tensors["features_cuda.%s" % name] = features(det_cuda, sets[name], "cuda")
            err = np.abs(tensors["features_cuda.%s" % name] - tensors["features.%s" % name]).max()
            notes["python_cuda_vs_cpu_features.%s" % name] = "%.3g" % err

    ga = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32)) * 0.3 + rng.normal(size=32)
    gb = rng.normal(size=(200, 32)) @ rng.normal(size=(32, 32)) * 0.25 + rng.normal(size=32)
    la = rng.normal(size=(20, 64)) * 1.5
    lb = rng.normal(size=(30, 64)) + 0.2
    tensors.update({"gauss.a": ga, "gauss.b": gb, "lowrank.a": la, "lowrank.b": lb})

    cases = {
        "fd.ab": (fa, fb), "fd.ba": (fb, fa), "fd.aa": (fa, fa), "fd.a1b": (fa[:1], fb),
        "fd.gauss": (ga, gb), "fd.lowrank": (la, lb),
    }
    for key, (x, y) in cases.items():
        d = frechet_distance(x, y)
        tensors[key] = np.array([d], dtype=np.float64)
        if x.shape[0] > 1:
            e = frechet_eigh(x, y)
            notes["eigh_vs_sqrtm." + key] = "%.3g" % (abs(e - d) / max(abs(d), 1e-300))
        print("%-12s %.17g" % (key, d))

    meta = {"frames": FRAMES, "clips": CLIPS, "resolution": RESOLUTION, "torch": torch.__version__,
            "scipy": scipy.__version__, "numpy": np.__version__}
    meta.update(notes)
    save_safetensors(os.path.join(out, "fixture.safetensors"), tensors, meta)
    for k, v in sorted(notes.items()):
        print("%-40s %s" % (k, v))
    for f in sorted(os.listdir(out)):
        print("%-22s %8d bytes" % (f, os.path.getsize(os.path.join(out, f))))


if __name__ == "__main__":
    main()
