// Package solver holds the noise schedules and samplers of Stable Video
// Diffusion's teacher, k-diffusion style: schedules are plain functions of
// numbers, samplers are plain functions over one denoiser contract.
//
// Entry points:
//   - KarrasSigmas: the σ schedule of Karras et al. 2022.
//   - FrameGuidance: SVD's per-frame classifier-free guidance scales.
//   - Scheduler (NewScheduler; LoadScheduler from a scheduler_config.json,
//     whose SchedulerConfig LoadSchedulerConfig reads; DefaultSchedulerConfig
//     is SVD's): diffusers' EulerDiscreteScheduler, reproduced to the float32
//     rounding of the reference. SetTimesteps, Sigmas, Timesteps,
//     InitNoiseSigma; ScaleInput and Advance on gotorch tensors
//     (ScaleModelInput and Step on the module's engine tensors).
//   - Denoiser (DenoiserFunc adapts a function; PairDenoiser evaluates both
//     branches in one call): the contract D(x; σ) with a conditional and an
//     unconditional branch. SampleEulerCFG: the teacher's Euler sampler with
//     per-frame linear guidance; Guided: a denoiser whose conditional branch
//     is the guided estimate.
//   - TeacherSolve and TrainingSigmas: OSV's k-step teacher ODE solver and
//     its training grid.
//   - Consistency, SampleConsistency, SampleTTS and SampleMultistep (every
//     option: the initial σ, travels, the caller's noise, guidance):
//     multistep consistency sampling and OSV's Time Travel Sampler.
//
// Functions on the module's engine tensors (those taking a *torch.Scope)
// panic with *torch.Error, like the engine; the gotorch forms return errors.
package solver
