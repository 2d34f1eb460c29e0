// Package solver will hold the noise schedules and samplers: the Karras
// sigma schedule, SVD's Euler scheduler, the teacher's Euler sampler with
// per-frame guidance, the k-step teacher ODE solver, multistep consistency
// sampling and the Time Travel Sampler.
package solver
