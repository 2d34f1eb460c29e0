// Package osv is what programs embed: Stable Video Diffusion's
// image-to-video Pipeline, run by the teacher or by a distilled one-step
// student, and the typed pieces of OSV's distillation.
//
// Entry points:
//   - Pipeline: LoadPipeline (a Hugging Face SVD folder; WithDevice,
//     WithDType, and for a student WithUNet, WithLoRA), NewPipeline (from
//     loaded models), Generate (image → Video; safe for several goroutines,
//     calls run one at a time) and Apply (the same on engine tensors).
//   - Samplers, chosen by GenerateOptions.Sampler: EulerSampler (the
//     teacher: SVD's Euler scheduler with per-frame guidance, the default),
//     ConsistencySampler (multistep consistency sampling on OSVSchedule or
//     AnimateLCMSchedule), TTSSampler (OSV's Time Travel Sampler), or any
//     type implementing Sampler.
//   - Models for distillation, each giving a solver.PairDenoiser for a
//     batch's Cond through its Denoiser method, all three sharing one
//     UNet's weights in memory: Teacher (NewTeacher: the frozen UNet),
//     Student (NewStudent, LoadStudent: the teacher plus trainable LoRA
//     adapters) and EMA (NewEMA: the target θ⁻, with Update and CopyFrom).
//   - Trainer: stage 1 (latent GAN pretraining) and stage 2 (adversarial
//     consistency distillation) built on those pieces, with TrainConfig,
//     checkpoints, metrics and export.
//   - Release frees the tensors the module's packages return.
//
// Subpackages: the VAE (vae), the CLIP image encoder (clip), image and
// video files (media), training data and the latent cache (data), and
// OSV's losses (loss/huber, loss/adversarial, loss/consistency).
//
// Functions taking a *torch.Scope (Apply, Sampler.Sample, the denoisers)
// panic with *torch.Error like the engine's operations; recover with
// torch.Recover. Every other function returns an error.
package osv
