// Package torch is the module's tensor engine over libtorch: tensor handles,
// scopes that release native memory deterministically, operations with
// autograd, optimisers, seeded random numbers, devices and dtypes, process
// groups for data-parallel training, a profiler, safetensors checkpoints,
// parameter sets, and zero-copy conversion to and from gotorch. The model
// packages of this module are built on it, and a library in another module
// composes its own training recipe with the same calls.
//
// # Entry points
//
// Scopes and tensors: NewScope, Scope.Child, Scope.Keep, Scope.Adopt,
// Scope.Drop, Scope.Close; Tensor.Free, Tensor.Released and the accessors
// Tensor.Shape, Dim, Size, Numel, DType, Device, Strides.
//
// Go data in and out: FromFloat32, FromFloat64, FromUint8, Zeros, Full,
// Arange; Tensor.Float32s, Tensor.Float64s, Tensor.Item; Tensor.To for a
// dtype or a device.
//
// Operations, all methods of *Scope: elementwise (Add, Sub, Mul, Div, Pow,
// Maximum, Minimum, the *Scalar forms, RSub, RDiv, ClampMin, ClampMax, Neg,
// Exp, Log, Sqrt, Rsqrt, Sin, Cos, Abs, Square, Lerp, Where), activations
// (SiLU, GELU, GELUTanh, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax),
// reductions (Sum, Mean, Amax), shapes and layouts (Reshape, Permute,
// Transpose, Expand, Slice, Select, Chunk, Cat, RepeatInterleave,
// Contiguous, ChannelsLast, Clone, Detach, Cast), new tensors like another
// (Scalar, Filled), layers (Matmul, Linear, Conv, GroupNorm, LayerNorm,
// SDPA, UpsampleNearest, Interpolate, Pad, PixelShuffle), fused ones
// (GroupNormAct, Residual, GEGLU) and linear algebra (EigH, EigvalsH).
//
// Autograd: Tensor.SetRequiresGrad, Tensor.RequiresGrad, Backward,
// Tensor.Grad, Tensor.ZeroGrad, ZeroGrads; Scope.Detach stops a gradient.
//
// Optimisers: NewAdamW (AdamW.Step, State, Restore, Close, SetLR; Foreach
// and Capturable), ClipGradNorm, ClipGradNormForeach, ClipGradNormDevice,
// EMA, CopyInto, Finite.
//
// CUDA graphs: CaptureGraph records a whole step (forward, backward, clip
// and optimiser) once; Graph.Replay runs it again with one launch.
//
// Random numbers: NewGenerator, NewDeviceGenerator, Generator.Randn,
// Generator.Rand, Generator.State, Generator.SetState.
//
// Devices, dtypes and settings: Device, CPU, CUDA, ParseDevice,
// Device.Check; DType and its constants, ParseDType; Synchronize,
// CUDAMemory, ResetPeakMemory, StartTimer; process-wide switches SetTF32,
// SetNumThreads, SetCuDNNBenchmark, SetFusedKernels, SetGroupNormMode,
// SetShortAttention, SetFusedLayerNorm, SetLayoutMode, ChannelsLastOn,
// ChannelsLastEverywhere; Autocast (mixed precision for one call, on its
// thread); LibtorchVersion, FusedKernelsBuilt, FusedKernelLaunches.
//
// Process groups: DistConfig, DistConfigFromEnv, FreePort,
// NewProcessGroup (ProcessGroup.AllReduceMean, Broadcast, Barrier,
// NewGradReducer), GradReducer, DistributedBuilt, ParseBackend.
//
// Profiler: StartProfiler, StopProfiler, DeviceTimes (a trace's device time
// by kernel), ReadDeviceTrace (that and the device's span, busy time and
// gaps), KernelClass and KernelClasses (kernels by kind: convolution, GEMM,
// attention, normalisation, elementwise, reduction, copy).
//
// Checkpoints: LoadFile, SaveFile and ReadTensor over the files of package
// torch/safetensors (safetensors.Open, safetensors.OpenCheckpoint for
// sharded checkpoints, safetensors.Write).
//
// Parameter sets and model options: NewParams (Params.Add, Register,
// Ignore, Load, Init, InitRandom, Free), Param, Init; ModelOption,
// WithDevice, WithDType, WithSeed, NewModelOptions.
//
// TorchScript: LoadScriptModule reads a file torch.jit.save wrote;
// ScriptModule.Signature describes a method, ScriptModule.Call runs one
// (tensors by position, bool, int and float arguments by name), without
// recording gradients.
//
// gotorch: ToGotorch, FromGotorch, Release.
//
// Leak tests: Live.
//
// # Errors
//
// The operation methods of *Scope report failure by panicking with *Error
// (the op, the layer path and libtorch's message, checked before any kernel
// runs where the engine can), so that model code reads like the
// architecture; so do the model forward passes built on them (the Apply
// methods of the model packages, such as unet.Model.Apply). Keep and Adopt
// into a closed scope, the Tensor accessors without an error result
// (Shape, Dim, Size, Numel, DType, Device, Strides) given a nil or released
// tensor, and Failf (a layer's own check) panic in the same way; Params.Add
// panics on a duplicate name, a bug in a model's construction.
//
// A caller recovers such panics at its entry point, and a layer names
// itself on the way out:
//
//	func Forward(x *torch.Tensor) (out *torch.Tensor, err error) {
//		defer torch.Recover(&err) // a panic becomes err
//		s := torch.NewScope()
//		defer s.Close()
//		h := block(s, x)
//		return s.Keep(h), nil
//	}
//
//	func block(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
//		defer torch.Annotate("down_blocks.0") // "down_blocks.0: conv2d: ..."
//		...
//	}
//
// Recover stores the *Error as it is (errors.As finds it, with its Op and
// Path); any other panic becomes an "internal error" with its stack, so that
// none crosses the caller's API.
//
// Every other function and method returns an error: a nil or released
// tensor, a closed scope, a negative dimension, a shape that does not fit,
// an unsupported dtype, a device this build or machine lacks, a truncated
// file; none panics on bad input.
//
// # Ownership
//
// A Scope owns the tensors made with it and releases them all at Close; a
// layer opens a Child for its intermediates and moves its result out with
// Keep. Drop releases dead intermediates early; Adopt moves a tensor in. A
// nil *Scope means the caller owns the result and releases it with Free,
// as a tensor kept from a root scope is the caller's.
// Views (Reshape, Permute, Slice, Expand, Detach, To with nothing to
// change) are handles of their own sharing storage with their base; the
// storage goes with its last handle. Cast may return its input.
//
// Tensors, scopes, generators, optimisers and parameter sets are not safe
// for concurrent use: each belongs to one goroutine at a time.
//
// # Memory
//
// Native memory (host or GPU) is not seen by the Go garbage collector: an
// SVD forward pass makes thousands of intermediates, and each is released
// when its scope closes, not when the collector runs. A cleanup releases a
// tensor that becomes unreachable without being freed, as a safety net
// only. Live counts the native tensors made by the engine and not yet
// freed: a leak test reads it before and after a computation (with its
// scopes closed) and expects the same number.
package torch
