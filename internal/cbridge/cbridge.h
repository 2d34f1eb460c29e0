// cbridge.h: the C ABI between Go and libtorch's ATen.
//
// Tensors cross as opaque handles (osv_tensor*, an at::Tensor owned by the
// bridge). Every function that can fail returns NULL on success or a message
// allocated with malloc, which the caller frees. No C++ exception crosses
// this boundary.
#ifndef OSV_CBRIDGE_H
#define OSV_CBRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct osv_tensor osv_tensor;
typedef struct osv_generator osv_generator;
typedef struct osv_group osv_group;

#define OSV_MAX_DIMS 16

// Lifecycle and inspection.
void osv_free(osv_tensor* t);
int64_t osv_live(void);
char* osv_info(osv_tensor* t, int64_t* shape, int* ndim, int* dtype, int* dev_type, int* dev_index,
               int* requires_grad);
// strides in elements, one per dimension.
char* osv_strides(osv_tensor* t, int64_t* strides, int* ndim);
char* osv_version(int* major, int* minor);

// Creation and transfer. dtype codes are c10::ScalarType values; dev_type 0 is
// CPU and 1 is CUDA.
char* osv_from_blob(void* data, const int64_t* shape, int ndim, int src_dtype, int dtype, int dev_type,
                    int dev_index, osv_tensor** out);
char* osv_copy_out(osv_tensor* t, void* dst, int64_t nbytes);
char* osv_to(osv_tensor* t, int dtype, int dev_type, int dev_index, osv_tensor** out);
char* osv_full(const int64_t* shape, int ndim, double value, int dtype, int dev_type, int dev_index,
               osv_tensor** out);
char* osv_arange(double start, double end, double step, int dtype, int dev_type, int dev_index,
                 osv_tensor** out);
char* osv_item(osv_tensor* t, double* out);

// Sharing with other owners of at::Tensor* (gotorch): export makes a new,
// uncounted at::Tensor* on the same storage; import makes a counted handle.
char* osv_export(osv_tensor* t, void** out);
char* osv_import(void* at_tensor, osv_tensor** out);
void osv_delete_exported(void* at_tensor);

// Autograd. Graphs are recorded for operations on tensors that require
// gradients; there is no global grad mode (it is thread-local in libtorch,
// and Go moves goroutines between threads): stop gradients with detach.
char* osv_set_requires_grad(osv_tensor* t, int on);
char* osv_backward(osv_tensor* loss, osv_tensor* grad);
// grad returns a null handle when the tensor has no gradient yet.
char* osv_grad(osv_tensor* t, osv_tensor** out);
char* osv_zero_grad(osv_tensor* t);

// Optimisation over lists of parameters (in place, without recording a
// graph). adamw skips parameters without a gradient. clip_grad_norm scales
// the gradients so that their global L2 norm is at most max_norm (when
// max_norm > 0) and returns the norm before scaling (NaN or Inf when a
// gradient is not finite; nothing is scaled then).
char* osv_adamw(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, int n, double lr,
                double beta1, double beta2, double eps, double weight_decay, int64_t step);
char* osv_clip_grad_norm(osv_tensor** params, int n, double max_norm, double* total_norm);
char* osv_adamw_foreach(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, int n, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t step);
char* osv_clip_grad_norm_foreach(osv_tensor** params, int n, double max_norm, double* total_norm);
// The same with the step counts (float32 scalars, one per parameter), the
// learning rate and the global norm kept on the device (optim_device.cc).
char* osv_adamw_device(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, osv_tensor** steps,
                       int n, osv_tensor* lr, double beta1, double beta2, double eps, double weight_decay,
                       osv_tensor* skip_unless_finite);
char* osv_clip_grad_norm_device(osv_tensor** params, int n, double max_norm, osv_tensor** total);
char* osv_lerp_device(osv_tensor** dst, osv_tensor** src, int n, osv_tensor* weight);
// ema: dst ← decay·dst + (1 − decay)·src, elementwise, for each pair.
char* osv_ema(osv_tensor** dst, osv_tensor** src, int n, double decay);
// copy_: dst ← src (same shape), in place.
char* osv_copy_(osv_tensor* dst, osv_tensor* src);

// Random numbers: a CPU generator (Philox-free mt19937 of ATen), so that a
// seed gives the same numbers on every device.
char* osv_generator_new(uint64_t seed, osv_generator** out);
// A generator of a device's own (CUDA's Philox generator on CUDA; the CPU
// generator on the CPU) that draws there.
char* osv_generator_new_device(uint64_t seed, int dev_type, int dev_index, osv_generator** out);
void osv_generator_free(osv_generator* g);
// The generator's state as a uint8 tensor, and back.
char* osv_generator_get_state(osv_generator* g, osv_tensor** out);
char* osv_generator_set_state(osv_generator* g, osv_tensor* state);
char* osv_randn(osv_generator* g, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index,
                osv_tensor** out);
char* osv_rand(osv_generator* g, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index,
               osv_tensor** out);

// Elementwise and reductions, selected by op codes (see ops.cc).
char* osv_unary(int op, osv_tensor* a, osv_tensor** out);
char* osv_binary(int op, osv_tensor* a, osv_tensor* b, osv_tensor** out);
char* osv_scalar(int op, osv_tensor* a, double s, osv_tensor** out);
char* osv_reduce(int op, osv_tensor* a, const int64_t* dims, int ndims, int keepdim, osv_tensor** out);
char* osv_lerp(osv_tensor* start, osv_tensor* end, osv_tensor* weight, osv_tensor** out);
char* osv_where(osv_tensor* cond, osv_tensor* a, osv_tensor* b, osv_tensor** out);
char* osv_softmax(osv_tensor* a, int64_t dim, osv_tensor** out);

// Shapes and views.
char* osv_reshape(osv_tensor* a, const int64_t* shape, int n, osv_tensor** out);
char* osv_permute(osv_tensor* a, const int64_t* dims, int n, osv_tensor** out);
char* osv_expand(osv_tensor* a, const int64_t* shape, int n, osv_tensor** out);
char* osv_slice(osv_tensor* a, int64_t dim, int64_t start, int64_t end, int64_t step, osv_tensor** out);
char* osv_cat(osv_tensor** ts, int n, int64_t dim, osv_tensor** out);
char* osv_repeat_interleave(osv_tensor* a, int64_t repeats, int64_t dim, osv_tensor** out);

// Layers.
char* osv_conv(osv_tensor* x, osv_tensor* w, osv_tensor* b, const int64_t* stride, const int64_t* padding,
               const int64_t* dilation, int nspatial, int64_t groups, osv_tensor** out);
char* osv_linear(osv_tensor* x, osv_tensor* w, osv_tensor* b, osv_tensor** out);
char* osv_group_norm(osv_tensor* x, int64_t groups, osv_tensor* w, osv_tensor* b, double eps, osv_tensor** out);
char* osv_layer_norm(osv_tensor* x, const int64_t* shape, int n, osv_tensor* w, osv_tensor* b, double eps,
                     osv_tensor** out);
char* osv_sdpa(osv_tensor* q, osv_tensor* k, osv_tensor* v, double scale, osv_tensor** out);
char* osv_upsample_nearest(osv_tensor* x, const int64_t* size, int nspatial, osv_tensor** out);
// mode 0 bilinear, 1 bicubic (2-d, [N, C, H, W]); antialias as PyTorch's
// interpolate(antialias=True) when downsampling.
char* osv_interpolate(osv_tensor* x, int mode, int64_t h, int64_t w, int align_corners, int antialias,
                      osv_tensor** out);
// pads [left, right, top, bottom, ...] of the last dimensions; mode 0
// constant (value), 1 reflect, 2 replicate.
char* osv_pad(osv_tensor* x, const int64_t* pads, int n, int mode, double value, osv_tensor** out);
char* osv_pixel_shuffle(osv_tensor* x, int64_t factor, osv_tensor** out);

// Fused block operations (fused.cc): one pass over memory on CUDA for
// inference, ATen's operators otherwise. group_norm_act is
// act(GroupNorm(x + bias)) with bias [C] or [N, C] (null: none) and act 0
// identity, 1 SiLU; residual is x + alpha·(h + bias), bias [C] and alpha
// one element (null: none, 1); geglu maps h [..., 2D] to
// h[..., :D]·GELU(h[..., D:]).
char* osv_group_norm_act(osv_tensor* x, int64_t groups, osv_tensor* w, osv_tensor* b, double eps, osv_tensor* bias,
                         int act, osv_tensor** out);
char* osv_residual(osv_tensor* x, osv_tensor* h, osv_tensor* bias, osv_tensor* alpha, osv_tensor** out);
char* osv_geglu(osv_tensor* h, osv_tensor** out);
char* osv_set_fused_kernels(int on);
int osv_fused_kernels_built(void);
int64_t osv_fused_kernel_launches(void);  // how many fused kernels ran

// Runtime settings and devices.
char* osv_set_tf32(int enabled);
char* osv_autocast(int cuda, int enabled, int dtype, int cache, int restore, int* was_enabled, int* was_dtype,
                   int* was_cache);
char* osv_set_num_threads(int n);
char* osv_set_cudnn_benchmark(int enabled);

// Kernel choices (see nn.cc): OSV_OPT_GROUP_NORM_SPLIT computes GroupNorm's
// statistics with ATen's split reductions (0 never, 1 on CUDA, 2 on every
// device); OSV_OPT_SHORT_ATTENTION
// is the sequence length up to which attention uses the math formulation on
// CUDA (0, the default: never); OSV_OPT_FUSED_LAYER_NORM (0, the default,
// or 1) runs LayerNorm over one trailing dimension as the bridge's own
// kernel on CUDA where autograd records nothing.
#define OSV_OPT_GROUP_NORM_SPLIT 0
#define OSV_OPT_SHORT_ATTENTION 1
#define OSV_OPT_FUSED_LAYER_NORM 2
char* osv_set_option(int key, int64_t value);
char* osv_get_option(int key, int64_t* value);
int osv_cuda_built(void);
int osv_cuda_device_count(void);
char* osv_cuda_synchronize(int dev_index);
char* osv_cuda_memory(int dev_index, int64_t* allocated, int64_t* peak, int64_t* reserved);
char* osv_cuda_reset_peak(int dev_index);
char* osv_cuda_empty_cache(void);

// Timing events on a CUDA device's current stream.
typedef struct osv_event osv_event;
char* osv_cuda_event_record(int dev_index, osv_event** out);
char* osv_cuda_event_elapsed(osv_event* start, osv_event* end, double* ms);
void osv_cuda_event_free(osv_event* e);

// CUDA graphs (graph.cc): enter makes the graph's side stream current on
// the calling thread (after waiting for the device), leave waits for it and
// restores the thread's stream; work issued between begin and end is
// recorded, and replay launches it on the thread's current stream.
typedef struct osv_graph osv_graph;
char* osv_graph_new(int dev_index, osv_graph** out);
char* osv_graph_enter(osv_graph* g);
char* osv_graph_leave(osv_graph* g);
char* osv_graph_begin(osv_graph* g);
char* osv_graph_end(osv_graph* g, int abort);
char* osv_graph_replay(osv_graph* g);
void osv_graph_free(osv_graph* g);

// The Kineto profiler (profile.cc): CPU operators, and CUDA kernels when
// cuda is nonzero, from start until stop writes a Chrome trace to path.
char* osv_profile_start(int cuda);
char* osv_profile_stop(const char* path);

// Data-parallel collectives (dist.cc): a c10d process group over a
// TCPStore rendezvous at addr:port (rank 0 serves it). backend 0 is Gloo
// (tensors on any device, reduced as float32 on the host), 1 is NCCL
// (tensors on CUDA device `device`, reduced as float32 there); in place.
int osv_dist_built(int backend);
char* osv_dist_init(const char* addr, int port, int rank, int world, int64_t timeout_ms, int backend, int device,
                    osv_group** out);
void osv_dist_free(osv_group* g);
char* osv_dist_allreduce_mean(osv_group* g, osv_tensor** ts, int n);
char* osv_dist_broadcast(osv_group* g, osv_tensor** ts, int n, int root);
char* osv_dist_barrier(osv_group* g);
// A gradient reducer averages the gradients of params over the group's
// ranks during the backward pass (buckets of bucket_bytes as float32):
// arm before the backward, finish after it (in_backward: how many buckets
// started their all-reduce while the backward ran).
typedef struct osv_reducer osv_reducer;
char* osv_reducer_new(osv_group* g, osv_tensor** params, int n, int64_t bucket_bytes, osv_reducer** out);
char* osv_reducer_arm(osv_reducer* r);
char* osv_reducer_finish(osv_reducer* r, int* in_backward);
void osv_reducer_free(osv_reducer* r);

// TorchScript (script.cc): a module read from a torch.jit.save file onto a
// device, in eval mode. signature describes a method's schema as text: a
// "schema" entry with the whole schema, then one "arg" entry per argument
// after self (name, type, has-default, default, keyword-only) and one
// "return" entry per result; fields are separated by 0x1f, entries by
// newlines. call runs a method on positional tensors and keyword arguments
// of kind 0 bool, 1 int, 2 float (their values as doubles), without
// recording gradients; the result must be a tensor.
typedef struct osv_module osv_module;
char* osv_script_load(const char* path, int dev_type, int dev_index, osv_module** out);
void osv_script_free(osv_module* m);
char* osv_script_signature(osv_module* m, const char* method, char** out);
char* osv_script_call(osv_module* m, const char* method, osv_tensor** args, int nargs, const char** kw_names,
                      const int* kw_kinds, const double* kw_values, int nkw, osv_tensor** out);

// Linear algebra (linalg.cc): the eigenvalues (ascending) of symmetric
// matrices [..., n, n], from their lower triangles, and, unless vectors is
// NULL, the orthonormal eigenvectors as columns.
char* osv_linalg_eigh(osv_tensor* a, osv_tensor** values, osv_tensor** vectors);

#ifdef __cplusplus
}
#endif

#endif
