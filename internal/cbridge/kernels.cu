// kernels.cu: fused elementwise kernels for inference on CUDA, built by
// nvcc into a shared library when the bridge is built with CUDA. They see
// raw pointers only; fused.cc checks shapes, layouts and dtypes, and falls
// back to ATen's operators for everything else (and wherever autograd
// needs a graph).
//
// Activations are [N, C, spatial...] in one of two dense layouts: the
// default one (channel c of sample n is a run of S elements, inner = S) or
// channels-last (the C channels of a position are adjacent, inner = 1).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace {

template <typename T>
__device__ __forceinline__ float load(T v);
template <>
__device__ __forceinline__ float load<float>(float v) { return v; }
template <>
__device__ __forceinline__ float load<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float load<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T store(float v);
template <>
__device__ __forceinline__ float store<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half store<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

__device__ __forceinline__ float gelu(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

// A vector of V elements moved as one 16-byte access.
template <typename T, int V>
struct alignas(16) vec {
  T v[V];
};

// The elementwise kernels come in two shapes, so that no thread divides
// per element: channels-last (grid (N, blocks); a thread owns V adjacent
// channels of its sample and walks the rows, C / V ≤ 256) and rows (grid
// (N·C, segments); a block walks a segment of one channel's run of S).

// op is what an elementwise kernel does to one vector: affine_act
// (act(x·scale + shift)) or residual (x + alpha·(h + bias)).
struct affine_act_op {
  const float* scale;  // [N, C]
  const float* shift;  // [N, C]
  int act;
};
struct residual_op {
  const float* bias;   // [C] or null
  const float* alpha;  // one float or null
};

template <typename T, int V>
__device__ __forceinline__ void apply(const affine_act_op& op, const float* sc, const float* sh, const vec<T, V>& x,
                                      const vec<T, V>*, vec<T, V>& out, float) {
#pragma unroll
  for (int j = 0; j < V; j++) {
    float v = load<T>(x.v[j]) * sc[j] + sh[j];
    if (op.act == 1) v = silu(v);
    out.v[j] = store<T>(v);
  }
}

template <typename T, int V>
__device__ __forceinline__ void apply(const residual_op&, const float* b, const float*, const vec<T, V>& x,
                                      const vec<T, V>* h, vec<T, V>& out, float a) {
#pragma unroll
  for (int j = 0; j < V; j++) out.v[j] = store<T>(load<T>(x.v[j]) + a * (load<T>(h->v[j]) + b[j]));
}

// Per-channel constants of an op for channel c of sample n.
__device__ __forceinline__ void consts(const affine_act_op& op, int64_t n, int64_t C, int64_t c, float& p, float& q) {
  p = op.scale[n * C + c];
  q = op.shift[n * C + c];
}
__device__ __forceinline__ void consts(const residual_op& op, int64_t, int64_t, int64_t c, float& p, float& q) {
  p = op.bias == nullptr ? 0.f : op.bias[c];
  q = 0.f;
}
__device__ __forceinline__ float alpha_of(const affine_act_op&) { return 1.f; }
__device__ __forceinline__ float alpha_of(const residual_op& op) { return op.alpha == nullptr ? 1.f : *op.alpha; }

template <typename T, int V, typename Op>
__global__ void elementwise_cl_kernel(const T* __restrict__ x, const T* __restrict__ h, T* __restrict__ y, Op op,
                                      int64_t S, int64_t C) {
  const int64_t cv = C / V;
  const int64_t rows_per = blockDim.x / cv;
  const int64_t t = threadIdx.x;
  if (t >= rows_per * cv) return;
  const int64_t n = blockIdx.x, col = t % cv;
  float p[V], q[V];
#pragma unroll
  for (int j = 0; j < V; j++) consts(op, n, C, col * V + j, p[j], q[j]);
  const float a = alpha_of(op);
  const int64_t base = n * S * cv + col;
  for (int64_t r = blockIdx.y * rows_per + t / cv; r < S; r += (int64_t)gridDim.y * rows_per) {
    const int64_t k = base + r * cv;
    vec<T, V> xv = reinterpret_cast<const vec<T, V>*>(x)[k], out;
    const vec<T, V>* hv = h == nullptr ? nullptr : reinterpret_cast<const vec<T, V>*>(h) + k;
    apply<T, V>(op, p, q, xv, hv, out, a);
    reinterpret_cast<vec<T, V>*>(y)[k] = out;
  }
}

template <typename T, int V, typename Op>
__global__ void elementwise_rows_kernel(const T* __restrict__ x, const T* __restrict__ h, T* __restrict__ y, Op op,
                                        int64_t S, int64_t C, int64_t seg_vecs) {
  const int64_t row = blockIdx.x;  // n·C + c
  float p[V], q[V];
  float p0, q0;
  consts(op, row / C, C, row % C, p0, q0);
#pragma unroll
  for (int j = 0; j < V; j++) {
    p[j] = p0;
    q[j] = q0;
  }
  const float a = alpha_of(op);
  const int64_t sv = S / V;
  const int64_t start = blockIdx.y * seg_vecs, end = min(sv, start + seg_vecs);
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const int64_t k = row * sv + i;
    vec<T, V> xv = reinterpret_cast<const vec<T, V>*>(x)[k], out;
    const vec<T, V>* hv = h == nullptr ? nullptr : reinterpret_cast<const vec<T, V>*>(h) + k;
    apply<T, V>(op, p, q, xv, hv, out, a);
    reinterpret_cast<vec<T, V>*>(y)[k] = out;
  }
}

// Channels-last statistics: x [N, S, C]; block (n, by) sums its rows of
// sample n per channel into part[n][by][0 or 1][C] (sum, sum of squares).
// Each thread owns V channels of every row it visits.
template <typename T, int V>
__global__ void stats_cl_kernel(const T* __restrict__ x, float* __restrict__ part, int64_t S, int64_t C) {
  const int64_t cv = C / V;                 // vectors per row
  const int64_t rows_per = blockDim.x / cv;  // rows a block visits at once
  const int64_t t = threadIdx.x;
  const int64_t n = blockIdx.x;
  float sum[V], sq[V];
#pragma unroll
  for (int j = 0; j < V; j++) sum[j] = sq[j] = 0.f;
  if (t < rows_per * cv) {
    const int64_t col = t % cv;
    const vec<T, V>* xs = reinterpret_cast<const vec<T, V>*>(x + n * S * C);
    for (int64_t r = blockIdx.y * rows_per + t / cv; r < S; r += (int64_t)gridDim.y * rows_per) {
      vec<T, V> in = xs[r * cv + col];
#pragma unroll
      for (int j = 0; j < V; j++) {
        const float v = load<T>(in.v[j]);
        sum[j] += v;
        sq[j] += v * v;
      }
    }
  }
  // Reduce the rows of the block per channel through shared memory: at
  // most blockDim.x·V floats for each of the two sums.
  extern __shared__ float sh[];
  float* ssum = sh;
  float* ssq = sh + blockDim.x * V;
#pragma unroll
  for (int j = 0; j < V; j++) {
    ssum[t * V + j] = sum[j];
    ssq[t * V + j] = sq[j];
  }
  __syncthreads();
  float* out = part + ((int64_t)n * gridDim.y + blockIdx.y) * 2 * C;
  for (int64_t c = t; c < C; c += blockDim.x) {
    const int64_t col = c / V, j = c % V;
    float a = 0.f, q = 0.f;
    for (int64_t r = 0; r < rows_per; r++) {
      a += ssum[(r * cv + col) * V + j];
      q += ssq[(r * cv + col) * V + j];
    }
    out[c] = a;
    out[C + c] = q;
  }
}

// Row statistics: x is `rows` contiguous rows of S elements; block
// (row, seg) sums its segment into part[row][seg][0 or 1].
template <typename T, int V>
__global__ void stats_rows_kernel(const T* __restrict__ x, float* __restrict__ part, int64_t S, int64_t seg_len) {
  const int64_t row = blockIdx.x;
  const int64_t start = blockIdx.y * seg_len;
  const int64_t end = min(S, start + seg_len);
  const vec<T, V>* xs = reinterpret_cast<const vec<T, V>*>(x + row * S);
  float sum = 0.f, sq = 0.f;
  for (int64_t k = start / V + threadIdx.x; k < end / V; k += blockDim.x) {
    vec<T, V> in = xs[k];
#pragma unroll
    for (int j = 0; j < V; j++) {
      const float v = load<T>(in.v[j]);
      sum += v;
      sq += v * v;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    sum += __shfl_down_sync(0xffffffffu, sum, off);
    sq += __shfl_down_sync(0xffffffffu, sq, off);
  }
  __shared__ float wsum[32], wsq[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    wsum[warp] = sum;
    wsq[warp] = sq;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = 0.f, q = 0.f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) {
      a += wsum[w];
      q += wsq[w];
    }
    float* out = part + (row * gridDim.y + blockIdx.y) * 2;
    out[0] = a;
    out[1] = q;
  }
}

// geglu: h [R, 2D] → out [R, D], out = h[:, :D]·gelu(h[:, D:]) (exact GELU).
template <typename T, int V>
__global__ void geglu_kernel(const T* __restrict__ h, T* __restrict__ out, int64_t R, int64_t D) {
  const int64_t dv = D / V;
  const int64_t nv = R * dv;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < nv; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = k / dv, col = k % dv;
    const vec<T, V>* row = reinterpret_cast<const vec<T, V>*>(h + r * 2 * D);
    vec<T, V> a = row[col], g = row[dv + col], o;
#pragma unroll
    for (int j = 0; j < V; j++) o.v[j] = store<T>(load<T>(a.v[j]) * gelu(load<T>(g.v[j])));
    reinterpret_cast<vec<T, V>*>(out)[k] = o;
  }
}

// group_sum adds v over the L lanes of each aligned group of a warp (L a
// power of two ≤ 32); every lane of the warp must call it.
__device__ __forceinline__ float group_sum(float v, int L) {
  for (int off = L / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// layer_norm: x [R, C] → y = (x − μ)·(σ² + eps)^(−1/2)·w + b per row, μ and
// the biased σ² in float32 (two passes over the row: the mean, then the
// centred squares), w and b [C] or null. L lanes own a row (the power of
// two ≤ 32 nearest below C/V), 32/L rows a warp, so that narrow rows (64
// float32 channels: 16 vectors) do not leave most of a block idle.
template <typename T, int V>
__global__ void layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                  T* __restrict__ y, int64_t R, int64_t C, float eps, int L) {
  const int lane = threadIdx.x % L;
  const int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / L;
  const bool active = row < R;
  const int64_t cv = C / V;
  const vec<T, V>* xr = reinterpret_cast<const vec<T, V>*>(x + (active ? row : 0) * C);
  float s = 0.0f;
  if (active)
    for (int64_t k = lane; k < cv; k += L) {
      const vec<T, V> v = xr[k];
#pragma unroll
      for (int j = 0; j < V; j++) s += load<T>(v.v[j]);
    }
  const float mean = group_sum(s, L) / static_cast<float>(C);
  float q = 0.0f;
  if (active)
    for (int64_t k = lane; k < cv; k += L) {
      const vec<T, V> v = xr[k];
#pragma unroll
      for (int j = 0; j < V; j++) {
        const float d = load<T>(v.v[j]) - mean;
        q += d * d;
      }
    }
  const float rstd = rsqrtf(group_sum(q, L) / static_cast<float>(C) + eps);
  if (!active) return;
  vec<T, V>* yr = reinterpret_cast<vec<T, V>*>(y + row * C);
  const vec<T, V>* wr = reinterpret_cast<const vec<T, V>*>(w);
  const vec<T, V>* br = reinterpret_cast<const vec<T, V>*>(b);
  for (int64_t k = lane; k < cv; k += L) {
    const vec<T, V> v = xr[k];
    vec<T, V> o;
    vec<T, V> wv, bv;
    if (w != nullptr) wv = wr[k];
    if (b != nullptr) bv = br[k];
#pragma unroll
    for (int j = 0; j < V; j++) {
      float r = (load<T>(v.v[j]) - mean) * rstd;
      if (w != nullptr) r *= load<T>(wv.v[j]);
      if (b != nullptr) r += load<T>(bv.v[j]);
      o.v[j] = store<T>(r);
    }
    yr[k] = o;
  }
}

// upsample2x: nearest ×2 of channels-last x [N, H, W, C] (memory order)
// into y [N, 2H, 2W, C]; block row n·H + h, each thread a column of V
// channels, walking the row's pixels.
template <typename T, int V>
__global__ void upsample2x_cl_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t H, int64_t W, int64_t C) {
  const int64_t cv = C / V;
  const int64_t per = blockDim.x / cv;
  const int64_t t = threadIdx.x;
  if (t >= per * cv) return;
  const int64_t row = blockIdx.x, n = row / H, h = row % H, col = t % cv;
  const vec<T, V>* in = reinterpret_cast<const vec<T, V>*>(x) + row * W * cv;
  vec<T, V>* out0 = reinterpret_cast<vec<T, V>*>(y) + ((n * 2 * H + 2 * h) * 2 * W) * cv;
  vec<T, V>* out1 = out0 + 2 * W * cv;
  for (int64_t w = t / cv; w < W; w += per) {
    const vec<T, V> v = in[w * cv + col];
    const int64_t o = 2 * w * cv + col;
    out0[o] = v;
    out0[o + cv] = v;
    out1[o] = v;
    out1[o + cv] = v;
  }
}

int grid_for(int64_t items, int threads) {
  int64_t g = (items + threads - 1) / threads;
  if (g > 65535LL * 32) g = 65535LL * 32;
  return static_cast<int>(g < 1 ? 1 : g);
}


// launch_elementwise runs op over x (and h) [N, C, S] in the layout inner
// names (1: channels-last, S: rows).
template <typename T, int V, typename Op>
int launch_elementwise(const void* x, const void* h, void* y, Op op, int64_t N, int64_t C, int64_t S, int64_t inner,
                       cudaStream_t stream) {
  const T* xp = static_cast<const T*>(x);
  const T* hp = static_cast<const T*>(h);
  T* yp = static_cast<T*>(y);
  if (inner == 1) {
    const int64_t cv = C / V;
    if (cv < 1 || cv > 256 || C % V != 0) return static_cast<int>(cudaErrorInvalidValue);
    const int64_t rows_per = 256 / cv;
    int64_t by = (S + rows_per * 4 - 1) / (rows_per * 4);  // about four vectors a thread
    by = by < 1 ? 1 : (by > 65535 ? 65535 : by);
    dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>(by));
    elementwise_cl_kernel<T, V, Op><<<grid, static_cast<unsigned>(cv * rows_per), 0, stream>>>(xp, hp, yp, op, S, C);
  } else {
    if (S % V != 0) return static_cast<int>(cudaErrorInvalidValue);
    const int64_t sv = S / V, seg = 1024;
    int64_t by = (sv + seg - 1) / seg;
    if (by > 65535) return static_cast<int>(cudaErrorInvalidValue);
    dim3 grid(static_cast<unsigned>(N * C), static_cast<unsigned>(by < 1 ? 1 : by));
    elementwise_rows_kernel<T, V, Op><<<grid, 256, 0, stream>>>(xp, hp, yp, op, S, C, seg);
  }
  return static_cast<int>(cudaGetLastError());
}

// with_dtype calls f(T{}, V) for the element type that dtype names (0
// float32, 1 float16, 2 bfloat16) and its vector width V (a
// std::integral_constant), then returns f's error or the launch's.
template <typename F>
int with_dtype(int dtype, F f) {
  int err = 0;
  switch (dtype) {
    case 0: err = f(float{}, std::integral_constant<int, 4>{}); break;
    case 1: err = f(__half{}, std::integral_constant<int, 8>{}); break;
    case 2: err = f(__nv_bfloat16{}, std::integral_constant<int, 8>{}); break;
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
  return err != 0 ? err : static_cast<int>(cudaGetLastError());
}

template <typename Op>
int dispatch_elementwise(int dtype, const void* x, const void* h, void* y, Op op, int64_t N, int64_t C, int64_t S,
                         int64_t inner, cudaStream_t stream) {
  return with_dtype(dtype, [&](auto t, auto v) {
    return launch_elementwise<decltype(t), decltype(v)::value>(x, h, y, op, N, C, S, inner, stream);
  });
}

}  // namespace

// Launchers. dtype: 0 float32, 1 float16, 2 bfloat16. Each returns 0, or
// a CUDA error code. The caller guarantees 16-byte aligned pointers and
// the divisibility the layout needs (see fused.cc).
extern "C" {

int osv_k_affine_act(int dtype, const void* x, void* y, const float* scale, const float* shift, int64_t N, int64_t C,
                     int64_t S, int64_t inner, int act, cudaStream_t stream) {
  return dispatch_elementwise(dtype, x, nullptr, y, affine_act_op{scale, shift, act}, N, C, S, inner, stream);
}

int osv_k_residual(int dtype, const void* x, const void* h, const float* b, const float* alpha, void* out, int64_t N,
                   int64_t C, int64_t S, int64_t inner, cudaStream_t stream) {
  return dispatch_elementwise(dtype, x, h, out, residual_op{b, alpha}, N, C, S, inner, stream);
}

// Channels-last statistics into part [N, blocks, 2, C], blocks from
// osv_k_stats_cl_blocks; C / vector width must be at most 256.
int osv_k_stats_cl_blocks(int64_t S) {
  int64_t b = S / 64;
  if (b > 256) b = 256;
  return static_cast<int>(b < 1 ? 1 : b);
}

int osv_k_stats_cl(int dtype, const void* x, float* part, int64_t N, int64_t S, int64_t C, int blocks,
                   cudaStream_t stream) {
  if (blocks > 65535) return static_cast<int>(cudaErrorInvalidValue);
  return with_dtype(dtype, [&](auto t, auto v) {
    using T = decltype(t);
    constexpr int V = decltype(v)::value;
    const int64_t cv = C / V;
    if (cv < 1 || cv > 256) return static_cast<int>(cudaErrorInvalidValue);
    const int threads = static_cast<int>(cv * (256 / cv));
    const size_t shmem = 2 * static_cast<size_t>(threads) * V * sizeof(float);
    dim3 grid(static_cast<unsigned>(N), blocks);
    stats_cl_kernel<T, V><<<grid, threads, shmem, stream>>>(static_cast<const T*>(x), part, S, C);
    return 0;
  });
}

// Row statistics into part [rows, segs, 2], segments of seg_len elements
// (a multiple of the vector width).
int osv_k_stats_rows(int dtype, const void* x, float* part, int64_t rows, int64_t S, int64_t seg_len, int segs,
                     cudaStream_t stream) {
  if (segs > 65535) return static_cast<int>(cudaErrorInvalidValue);
  return with_dtype(dtype, [&](auto t, auto v) {
    using T = decltype(t);
    dim3 grid(static_cast<unsigned>(rows), segs);
    stats_rows_kernel<T, decltype(v)::value><<<grid, 256, 0, stream>>>(static_cast<const T*>(x), part, S, seg_len);
    return 0;
  });
}

int osv_k_upsample2x(int dtype, const void* x, void* y, int64_t N, int64_t H, int64_t W, int64_t C,
                     cudaStream_t stream) {
  if (N * H > 2147483647LL) return static_cast<int>(cudaErrorInvalidValue);
  return with_dtype(dtype, [&](auto t, auto v) {
    using T = decltype(t);
    constexpr int V = decltype(v)::value;
    const int64_t cv = C / V;
    if (C % V != 0 || cv < 1 || cv > 256) return static_cast<int>(cudaErrorInvalidValue);
    const unsigned threads = static_cast<unsigned>(cv * (256 / cv));
    upsample2x_cl_kernel<T, V><<<static_cast<unsigned>(N * H), threads, 0, stream>>>(static_cast<const T*>(x),
                                                                                     static_cast<T*>(y), H, W, C);
    return 0;
  });
}

int osv_k_geglu(int dtype, const void* h, void* out, int64_t R, int64_t D, cudaStream_t stream) {
  return with_dtype(dtype, [&](auto t, auto v) {
    using T = decltype(t);
    constexpr int V = decltype(v)::value;
    geglu_kernel<T, V><<<grid_for(R * D / V, 256), 256, 0, stream>>>(static_cast<const T*>(h), static_cast<T*>(out), R, D);
    return 0;
  });
}

int osv_k_layer_norm(int dtype, const void* x, const void* w, const void* b, void* y, int64_t R, int64_t C,
                     float eps, cudaStream_t stream) {
  return with_dtype(dtype, [&](auto t, auto v) {
    using T = decltype(t);
    constexpr int V = decltype(v)::value;
    const int64_t cv = C / V;
    if (C % V != 0 || cv < 1) return static_cast<int>(cudaErrorInvalidValue);
    int L = 1;
    while (L * 2 <= 32 && L * 2 <= cv) L *= 2;
    const int threads = 256;
    const int64_t blocks = (R * L + threads - 1) / threads;
    if (blocks > 2147483647LL) return static_cast<int>(cudaErrorInvalidValue);
    layer_norm_kernel<T, V><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b), static_cast<T*>(y), R, C, eps, L);
    return 0;
  });
}

}  // extern "C"
