"""Times diffusers' SVD components on the bench's cases, for examples/bench.

The bench writes the models' configs (diffusers' and transformers' keys) to
a folder and calls this script with the same sizes, dtype and run counts; it
prints one JSON object per case on stdout: name, runs_ms (CUDA events on the
current stream, after warm-up runs) and peak_gib (the caching allocator's
peak of allocated bytes during the timed runs), or name and error.
"""

import argparse
import json
import os
import sys
import time

import torch


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(name, runs=None, peak=None, error=None, note=None):
    out = {"name": name}
    if error is not None:
        out["error"] = error
    else:
        out["runs_ms"] = runs
        out["peak_gib"] = peak
    if note:
        out["note"] = note
    print(json.dumps(out), flush=True)


def timed(name, fn, warmup, runs, note=None):
    """Runs fn warmup times, then runs times between CUDA events."""
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                fn()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ms = []
            for _ in range(runs):
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                ms.append(start.elapsed_time(stop))
        peak = torch.cuda.max_memory_allocated() / 2**30
        log(f"{name}: median {sorted(ms)[len(ms) // 2]:.1f} ms")
        emit(name, ms, peak, note=note)
    except torch.cuda.OutOfMemoryError as e:
        emit(name, error=f"out of memory: {str(e).splitlines()[0]}")
    except Exception as e:  # a failed case is reported, the next one runs
        emit(name, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    finally:
        torch.cuda.empty_cache()


def read(cfg_dir, name):
    with open(os.path.join(cfg_dir, name)) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", required=True, help="folder with unet.json, vae.json, clip.json, scheduler.json")
    ap.add_argument("--cases", default="unet,vae,clip,pipeline")
    ap.add_argument("--batch", default="1,2")
    ap.add_argument("--frames", type=int, default=14)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pipeline-runs", type=int, default=3)
    ap.add_argument("--pipeline-warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet and the VAE decoder")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import diffusers
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    cases = set(args.cases.split(","))
    log(f"peer: diffusers {diffusers.__version__}, torch {torch.__version__}, {args.dtype} on {torch.cuda.get_device_name(dev)}")

    t0 = time.time()
    # Built on the CPU, then moved: every parameter and buffer on the device.
    unet = UNetSpatioTemporalConditionModel.from_config(read(args.configs, "unet.json")).to(device=dev, dtype=dt).eval()
    vae = AutoencoderKLTemporalDecoder.from_config(read(args.configs, "vae.json")).to(device=dev, dtype=dt).eval()
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**read(args.configs, "clip.json"))).to(device=dev, dtype=dt).eval()
    log(f"peer: models built in {time.time() - t0:.1f} s")
    if args.compile:
        unet = torch.compile(unet)
        vae.decoder = torch.compile(vae.decoder)

    g = torch.Generator(device=dev).manual_seed(1)
    f, h, w = args.frames, args.height // 8, args.width // 8
    cfg = unet.config if not args.compile else unet._orig_mod.config

    if "unet" in cases:
        for bs in [int(b) for b in args.batch.split(",")]:
            x = torch.randn(bs, f, cfg.in_channels, h, w, generator=g, device=dev, dtype=dt)
            ctx = torch.randn(bs, 1, cfg.cross_attention_dim, generator=g, device=dev, dtype=dt)
            t = torch.full((bs,), 0.5, device=dev)
            ids = torch.full((bs, 3), 6.0, device=dev, dtype=dt)
            timed(f"unet forward b{bs}", lambda: unet(x, t, ctx, ids, return_dict=False), args.warmup, args.runs)
            del x, ctx

    if "vae" in cases:
        z = torch.randn(f, 4, h, w, generator=g, device=dev, dtype=dt)
        timed(f"vae decode {f} frames", lambda: vae.decode(z, num_frames=f).sample, args.warmup, args.runs)
        img = torch.rand(1, 3, args.height, args.width, generator=g, device=dev, dtype=dt) * 2 - 1
        timed("vae encode 1 image", lambda: vae.encode(img).latent_dist.mode(), args.warmup, args.runs)
        del z

    fe = CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224})
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=enc, unet=unet,
                                        scheduler=EulerDiscreteScheduler.from_config(read(args.configs, "scheduler.json")),
                                        feature_extractor=fe)
    pipe.set_progress_bar_config(disable=True)
    # The pipeline hands the VAE a float32 image; only an fp16 VAE is cast
    # (upcast) for it, so a bf16 VAE gets the image in its own dtype here.
    encode_vae = pipe._encode_vae_image
    pipe._encode_vae_image = lambda img, *a, **k: encode_vae(img.to(vae.dtype), *a, **k)
    image = torch.rand(1, 3, args.height, args.width, generator=g, device=dev)
    if "clip" in cases:
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
        mean = torch.tensor(fe.image_mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(fe.image_std, device=dev).view(1, 3, 1, 1)

        def clip_encode():
            # The pipeline's steps for a PIL image, on the device: the
            # antialiased resize to 224 in [-1, 1], CLIP's normalisation,
            # the encoder.
            small = (_resize_with_antialiasing(image * 2 - 1, (224, 224)) + 1) / 2
            return enc(((small - mean) / std).to(dt)).image_embeds

        timed("clip encode 1 image", clip_encode, args.warmup, args.runs,
              note="diffusers' steps for an image (antialiased resize, normalisation, the encoder) on the device")
    if "pipeline" in cases:
        from PIL import Image
        pil = Image.fromarray((image[0].permute(1, 2, 0).float().cpu().numpy() * 255).astype("uint8"))
        for name, steps, max_g in [("pipeline 25 steps cfg", 25, 3.0), ("pipeline 1 step cfg", 1, 3.0), ("pipeline 1 step", 1, 1.0)]:
            def run(steps=steps, max_g=max_g):
                pipe(pil, height=args.height, width=args.width, num_frames=f, num_inference_steps=steps,
                     min_guidance_scale=1.0, max_guidance_scale=max_g, decode_chunk_size=f, output_type="pt",
                     generator=torch.Generator(device=dev).manual_seed(0))
            timed(name, run, args.pipeline_warmup, args.pipeline_runs)


if __name__ == "__main__":
    main()
